# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Neural collapse at a glance
#
# We train the smallest model in which neural collapse is a theorem: a deep linear
# unconstrained-feature model {cite}`dang2023neural` with $K = 4$ balanced classes, mean squared
# error and no bias. Gradient descent starts from random features and weights; within a few
# thousand steps the features of each class shrink onto their mean (NC1) and the classifier's Gram
# matrix $WW^\top$ becomes a multiple of the identity, the *orthogonal frame* that the paper proves
# optimal. The same run also approaches the closed-form minimum of the loss.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, seconds) or "full"
device = "auto"  # "auto", "cpu" or "cuda"
seed = 0
num_classes = 4  # K
n_per_class = 25  # samples per class
depth = 3  # M linear layers on the free features
width = 16  # hidden width d, at least K
weight_decay = 5e-4  # lambda_W = lambda_H, as in the paper synthetic runs
steps = 3000  # full-batch SGD steps
learning_rate = 0.1  # the authors' recipe: SGD, momentum 0.9
loss_tolerance = 0.05  # relative gap to the closed-form minimum allowed after `steps`

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

import ncbook as nc

torch_device = nc.profiles.setup(profile, device, seed)
num_classes = nc.profiles.check_int("num_classes", num_classes, low=2, high=64)
n_per_class = nc.profiles.check_int("n_per_class", n_per_class, low=1)
depth = nc.profiles.check_int("depth", depth, low=1, high=12)
width = nc.profiles.check_int("width", width, low=num_classes)
weight_decay = nc.profiles.check_float("weight_decay", weight_decay, low=0.0, low_open=True)
steps = nc.profiles.check_int("steps", steps, low=1)
learning_rate = nc.profiles.check_float("learning_rate", learning_rate, low=0.0, low_open=True)
loss_tolerance = nc.profiles.check_float("loss_tolerance", loss_tolerance, low=0.0)
ledger = nc.claims.Ledger("00_overview", profile, paper="A")
sns.set_theme(style="whitegrid")

# %% [markdown]
# ## The model and its prediction
#
# The free features $H_1$ ($d \times N$) pass through $M$ bias-free linear layers, and the objective
# is the regularised squared error {eq}`eq-ufm`. For balanced classes, paper A shows that every
# global minimizer has $H_1$ collapsed to its class means and $W = W_M \cdots W_1$ with
# $WW^\top \propto I_K$. `ncbook.theory.mse_minimizer` gives the exact minimum value and the norms.

# %%
counts = [n_per_class] * num_classes
prediction = nc.theory.mse_minimizer(counts, depth, lambda_W=weight_decay, lambda_H=weight_decay)
print(f"closed-form minimum {prediction.loss:.6g}; predicted ||w_k||^2 = {prediction.w_norm_sq[0]:.4g}")

# %% [markdown]
# ## Training
#
# Full-batch SGD with momentum from a random start, the recipe of the paper's synthetic
# experiments. Every 25 steps `ncbook.models.solve` records, for every layer $m$, NC1 of the features
# $H_m$ and the distance of the normalised Gram matrix of the classifier acting on that layer,
# $W_M\cdots W_m$, to the orthogonal frame.

# %%
config = nc.optimize.MinimizeConfig("sgd", steps=steps, lr=learning_rate, momentum=0.9, log_every=25)
run = nc.models.solve(nc.models.UFMSpec(counts, depth, width, lambda_W=weight_decay, lambda_H=weight_decay),
                      config=config, starts=1, seed=seed, device=torch_device)
history = run.history
nc.profiles.save_result(profile, "00_overview", "history.csv", history)
final = run.final_metrics()
print(f"final loss {run.loss:.6g}; NC1 {final['nc1@1']:.2e}; distance to OF {final['nc2_of_w@1']:.2e}")

# %% [markdown]
# {numref}`fig-overview-curves` shows collapse as it happens, layer by layer.

# %% mystnb={"figure": {"caption": "Training curves (log scale). Left: the loss approaches the closed-form global minimum (dashed). Middle: NC1 of the features entering each layer. Right: distance of the normalised Gram matrix of the classifier acting on each layer to the orthogonal frame.", "name": "fig-overview-curves"}}
curves = history[history["metric"].isin(["nc1", "nc2_of_w"])]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
sns.lineplot(data=history.query("metric == 'loss'"), x="step", y="value", ax=axes[0])
axes[0].axhline(prediction.loss, ls="--", color="k", label="closed form")
axes[0].legend()
for ax, metric, label in zip(axes[1:], ["nc1", "nc2_of_w"], ["NC1", "distance to OF"]):
    sns.lineplot(data=curves[curves["metric"] == metric], x="step", y="value", hue="layer", ax=ax, palette="crest")
    ax.set_ylabel(label)
for ax in axes:
    ax.set_yscale("log")
fig.tight_layout()
plt.show()

# %% [markdown]
# NC1 falls by orders of magnitude at every layer while the Gram matrices settle onto the
# orthogonal frame, and the loss closes in on the closed-form minimum: the statements of the
# theorem happen together, at every depth of the head. {numref}`fig-overview-gram` compares the
# Gram matrices themselves.

# %% mystnb={"figure": {"caption": "Normalised classifier Gram matrix after training (left) and the predicted orthogonal frame (right). Look at the off-diagonal entries: the angles between classifier rows are gone.", "name": "fig-overview-gram"}}
W = run.model.end_to_end().detach().cpu()
orthogonal_frame = nc.geometry.orthogonal_frame(num_classes)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, matrix, title in zip(axes, [nc.geometry.normalized(W @ W.T), orthogonal_frame],
                             ["gradient descent", "orthogonal frame (theory)"]):
    sns.heatmap(pd.DataFrame(matrix.numpy()), ax=ax, annot=True, fmt=".2f", cmap="vlag",
                center=0, vmin=-0.6, vmax=0.6, cbar=False)
    ax.set_title(title)
plt.show()

# %% [markdown]
# The trained classifier rows are orthogonal and of equal length, as the orthogonal frame
# $I_K/\sqrt{K}$ requires; the entries agree to two decimals.
#
# ## Claims

# %%
first_nc1 = history.query("metric == 'nc1' and layer == 1")["value"].iloc[0]
ledger.check("NC1 of the features falls below 1e-4 at every layer", predicted=0.0,
             measured=[final[f"nc1@{m}"] for m in range(1, depth + 1)], tolerance=1e-4, kind="upper")
ledger.check("NC1 falls by more than 1000x during training", predicted=1e3,
             measured=first_nc1 / final["nc1@1"], tolerance=1e3, kind="lower")
ledger.check("W W^T approaches the orthogonal frame (normalised Frobenius distance)",
             predicted=0.0, measured=final["nc2_of_w@1"], tolerance=0.02, kind="upper")
ledger.check("final loss approaches the closed-form global minimum", predicted=prediction.loss,
             measured=run.loss, tolerance=loss_tolerance, kind="rel")
ledger.save()
ledger.table()

# %%
ledger.assert_all()
