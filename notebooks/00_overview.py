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
# matrix $WW^\top$ becomes a multiple of the identity, the *orthogonal frame* of
# {prf:ref}`thm-11-balanced-mse`. The same run also approaches the closed-form minimum of the loss.

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% [markdown]
# ```{admonition} What this chapter checks
# :class: tip
# That plain gradient descent (the authors' recipe: SGD with momentum, full batch) reaches the
# collapsed, orthogonal-frame minimizer that the theory predicts. Look at
# {numref}`fig-overview-curves` (NC1 and the distance to the orthogonal frame falling at every
# layer) and at the Gram matrices of {numref}`fig-overview-gram`.
# ```

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, seconds) or "full"
device = "auto"  # "auto", "cpu" or "cuda"
seed = 0
num_classes = 4  # K
n_per_class = 25  # samples per class
depth = 3  # M linear layers on the free features
width = 16  # hidden width d, at least K
weight_decay = 5e-4  # lambda_W and lambda_H, as in the synthetic runs of the authors
steps = 3000  # full-batch SGD steps
learning_rate = 0.1  # the recipe of the authors: SGD, momentum 0.9
loss_tolerance = 0.05  # relative gap to the closed-form minimum allowed after `steps`

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

import ncbook as nc
from ncbook.experiments import theorem_checks as tc

nb = nc.notebook(profile=profile, device=device, seed=seed)
width = tc.check_width("width", width, num_classes)
counts = [n_per_class] * num_classes
nc.plots.theme()

# %% [markdown]
# ## The model and its prediction
#
# The free features $H_1$ ($d \times N$) pass through $M$ bias-free linear layers, and the objective
# is the regularised squared error {eq}`eq-ufm`. For balanced classes, every global minimizer has
# $H_1$ collapsed to its class means (neural collapse across the linear layers, as the abstract of
# paper A states) and $W = W_M \cdots W_1$ with $WW^\top \propto I_K$
# ({prf:ref}`thm-11-balanced-mse`, as reconstructed). `ncbook.theory.mse_minimizer` gives the exact
# minimum value and the norms.

# %%
prediction = nc.theory.mse_minimizer(counts, depth, lambda_W=weight_decay, lambda_H=weight_decay)
pd.DataFrame([{"closed-form minimum f*": prediction.loss, "predicted ‖w_k‖²": prediction.w_norm_sq[0]}])

# %% [markdown]
# ## Training
#
# Full-batch SGD with momentum from a random start, the recipe of the paper's synthetic
# experiments. Every 25 steps `ncbook.models.solve` records, for every layer $m$, NC1 of the features
# $H_m$ and the distance of the normalised Gram matrix of the classifier acting on that layer,
# $W_M\cdots W_m$, to the orthogonal frame.

# %%
spec = nc.models.UFMSpec(counts, depth, width, lambda_W=weight_decay, lambda_H=weight_decay)
config = nc.optimize.MinimizeConfig("sgd", steps=steps, lr=learning_rate, momentum=0.9, log_every=25)
run = nc.models.solve(spec, config=config, starts=1, seed=seed, device=nb.device)
history, final = run.history, run.final_metrics()
nb.save("history.csv", history)
pd.DataFrame([{"final loss": run.loss, "NC1 (layer 1)": final["nc1@1"], "distance to OF": final["nc2_of_w@1"]}])

# %% [markdown]
# {numref}`fig-overview-curves` shows collapse as it happens, layer by layer.

# %% mystnb={"figure": {"caption": "Training curves (log scale). Top: the loss approaches the closed-form global minimum $f^*$ (dashed). Middle: NC1 of the features $H_m$ entering each layer $m$. Bottom: distance of the normalised Gram matrix of the classifier acting on each layer to the orthogonal frame.", "name": "fig-overview-curves"}, "image": {"alt": "Three log-scale line plots against the SGD step: the loss falling onto a dashed line, and NC1 and the orthogonal-frame distance falling by orders of magnitude for every layer."}}
curves = history[history["metric"].isin(["nc1", "nc2_of_w"])]
fig, axes = plt.subplots(3, 1, figsize=(6.5, 7.5), sharex=True)
sns.lineplot(data=history.query("metric == 'loss'"), x="step", y="value", ax=axes[0])
axes[0].axhline(prediction.loss, ls="--", color="k", label="closed form $f^*$")
axes[0].legend()
for ax, metric in zip(axes[1:], ["nc1", "nc2_of_w"]):
    sns.lineplot(data=curves[curves["metric"] == metric], x="step", y="value", hue="layer", ax=ax,
                 palette="crest").legend(title="layer $m$")
labels = ["$f$", r"$\mathrm{NC1}(H_m)$", r"$\|\mathrm{nrm}(W_{M:m}W_{M:m}^\top) - I_K/\sqrt{K}\|_F$"]
for ax, label in zip(axes, labels):
    ax.set(yscale="log", ylabel=label, xlabel="SGD step")
fig.tight_layout()
plt.show()

# %% [markdown]
# NC1 falls by orders of magnitude at every layer while the Gram matrices settle onto the
# orthogonal frame, and the loss closes in on the closed-form minimum: the statements of the
# theorem happen together, at every depth of the head. {numref}`fig-overview-gram` compares the
# Gram matrices themselves.

# %% mystnb={"figure": {"caption": "Normalised classifier Gram matrix $\\mathrm{nrm}(WW^\\top)$ after training (left) and the predicted orthogonal frame $I_K/\\sqrt{K}$ (right). Look at the off-diagonal entries: the angles between classifier rows are gone.", "name": "fig-overview-gram"}, "image": {"alt": "Two annotated 4 by 4 heatmaps, nearly identical: 0.50 on the diagonal and 0.00 elsewhere."}}
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

# %% tags=["hide-input"]
first_nc1 = history.query("metric == 'nc1' and layer == 1")["value"].iloc[0]
nb.check("NC1 of the features falls below 1e-4 at every layer", source="paper-A", kind="upper", tolerance=1e-4,
         measured=[final[f"nc1@{m}"] for m in range(1, depth + 1)])
nb.check("W W^T approaches the orthogonal frame (normalised Frobenius distance)", source="paper-A",
         measured=final["nc2_of_w@1"], tolerance=0.02, kind="upper")

# %% tags=["hide-input"]
nb.check("NC1 falls by more than 1000x during training", source="ours", measured=first_nc1 / final["nc1@1"],
         tolerance=1e3, kind="lower")
nb.check("final loss approaches the closed-form global minimum", source="ours", predicted=prediction.loss,
         measured=run.loss, tolerance=loss_tolerance)

# %% tags=["hide-input"]
nb.finish()
