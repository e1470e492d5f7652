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
# # Imbalanced MSE, one layer: a general orthogonal frame and minority collapse
#
# With imbalanced classes the optimum is no longer symmetric. {cite:t}`dang2023neural` show that
# for mean squared error without bias the last-layer features and classifiers converge to
# orthogonal vectors whose lengths depend on the amount of data in each class. This chapter takes
# the plain unconstrained-feature model ($M = 1$), states the minimizer with its constants, and
# checks it against float64 L-BFGS.

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% [markdown]
# ```{admonition} What this chapter checks
# :class: tip
# * Orthogonal class means and classifier rows whose lengths follow the closed form in $n_k$, a
#   *general orthogonal frame* (GOF), with $w_k \propto \bar h_k$ ({numref}`fig-14-norms`).
# * Minority collapse: the smallest class goes to zero, continuously as $\lambda$ grows
#   ({numref}`fig-14-collapse`).
# * That the orthogonal-frame metric of the balanced chapters does not vanish here.
# ```

# %% [markdown]
# ```{prf:theorem} Paper A, as reconstructed: imbalanced MSE, one layer
# :label: thm-14-imbalanced-mse
#
# Let $n_1 \ge \dots \ge n_K$, $N = \sum_k n_k$, $d \ge K$, and
# $f = \frac{1}{2N}\|WH - Y\|_F^2 + \frac{\lambda_W}{2}\|W\|_F^2 + \frac{\lambda_H}{2}\|H\|_F^2$.
# Every global minimizer has
# * **NC1** $h_i = \bar h_{y_i}$, and classifier rows and class means that are orthogonal vectors
#   with lengths depending on the class sizes, $w_k \propto \bar h_k$ {source}`paper: abstract`;
# * the lengths $WW^\top = \mathrm{diag}(s_k^2)$,
#   $\bar H^\top\bar H = \mathrm{diag}\big(s_k^2/(s_k^2 + N\lambda_H)^2\big)$ with
#   $s_k^2 = \big(\sqrt{n_k\lambda_H/\lambda_W} - N\lambda_H\big)_+$ {source}`authors' code: compute_s`
#   {source}`ours: derived and verified here`;
# * **NC3** $w_k = (s_k^2 + N\lambda_H)\,\bar h_k$ and
#   $w_k^\top\bar h_k = 1 - N\sqrt{\lambda_W\lambda_H/n_k}$ for the surviving classes
#   {source}`ours: derived and verified here`;
# * **minority collapse** $w_k = \bar h_k = 0$ iff $n_k \le N^2\lambda_W\lambda_H$, reached
#   continuously, and
#   $f^* = \sum_{k\ \rm active}\big[\sqrt{n_k\lambda_W\lambda_H} - \tfrac N2\lambda_W\lambda_H\big] +
#   \sum_{k\ \rm collapsed}\frac{n_k}{2N}$ {source}`ours: derived and verified here`.
# ```

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; the float64 L-BFGS of this notebook runs on the CPU
seed = 0
n_per_class = [40, 20, 10, 5]  # class sizes, largest first
width = 6  # d, at least K
lambda_W = 0.03  # weight decay
lambda_H = 0.03  # feature decay
starts = 2  # random starts per problem (best kept)
sweep_points = 6  # common lambdas at which the collapse curve is re-solved
tolerance = 1e-6  # relative error allowed on matrices (L-BFGS stops at gradient 1e-12)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import ncbook as nc
from ncbook.experiments import theorem_checks as tc

nb = nc.notebook(profile=profile, device=device, seed=seed)
width = tc.check_width("width", width, len(tc.check_list("n_per_class", n_per_class)))
counts, K, N = n_per_class, len(n_per_class), sum(n_per_class)
nc.plots.theme()

# %% [markdown]
# ## The prediction
#
# `nc.theory.mse_minimizer` with $M = 1$ gives the norms per class. Next to them, the formulas of the
# statement written out: an independent check of the library's bookkeeping (claims of kind
# `consistency`, not checks of the paper).

# %%
predictions, runs = tc.solve_depths(counts, [1], width, lambda_W=lambda_W, lambda_H=lambda_H,
                                    starts=starts, init_std=0.5, seed=seed)
prediction, run = predictions[1], runs[1]
n = np.array(counts, dtype=float)
on = n > N**2 * lambda_W * lambda_H
s_sq = np.maximum(np.sqrt(n * lambda_H / lambda_W) - N * lambda_H, 0)

# %% tags=["hide-input"]
formula_loss = np.sum(np.where(on, np.sqrt(n * lambda_W * lambda_H) - N * lambda_W * lambda_H / 2, n / (2 * N)))
nb.check("library ||w_k||^2 = (sqrt(n_k lam_H/lam_W) - N lam_H)_+ written out", measured=prediction.w_norm_sq,
         predicted=s_sq, tolerance=1e-12, kind="abs", source="consistency")
nb.check("library f* = the sum over active and collapsed classes written out", measured=prediction.loss,
         predicted=formula_loss, tolerance=1e-12, source="consistency")
nb.check("library collapse set = {k : n_k <= N^2 lam_W lam_H}", measured=(~prediction.active).astype(float),
         predicted=(~on).astype(float), tolerance=0.0, kind="abs", source="consistency")

# %% [markdown]
# ## Optimising from random starts
#
# For $M = 1$ the landscape is benign (every local minimum is global), so a few starts suffice.
# `tc.class_table` sets the optimum's per-class norms next to the closed form.

# %%
classes = tc.class_table(prediction, run)
classes[["n_k", "active", "w_sq", "w_sq_star", "h_sq", "h_sq_star", "wh", "wh_star"]]

# %% [markdown]
# {numref}`fig-14-norms` shows the class-size dependence directly.

# %%
norms = pd.concat([classes.assign(quantity=r"$\|w_k\|^2$", measured=classes.w_sq, closed=classes.w_sq_star),
                   classes.assign(quantity=r"$\|\bar h_k\|^2$", measured=classes.h_sq, closed=classes.h_sq_star)])
norms["class"] = [f"{k} ($n_k$={c})" for k, c in zip(norms["class"], norms["n_k"])]

# %% mystnb={"figure": {"caption": "Squared norms per class: classifier rows $\\|w_k\\|^2$ (left) and class means $\\|\\bar h_k\\|^2$ (right), L-BFGS (bars) against the closed form (black ticks). Larger classes get longer classifier rows; the smallest class has collapsed to zero.", "name": "fig-14-norms"}, "image": {"alt": "Two bar charts of squared norms per class with black ticks for the closed form on each bar; the smallest class is zero."}}
grid = sns.catplot(data=norms, x="class", y="measured", col="quantity", kind="bar", sharey=False,
                   height=3.2, aspect=1.3, color="tab:blue")
for ax, (_, part) in zip(grid.axes.flat, norms.groupby("quantity", sort=False)):
    ax.scatter(range(K), part["closed"], marker="_", s=600, color="k", zorder=3)
    ax.set(ylabel="squared norm", xlabel="class $k$")
grid.set_titles("{col_name}")
plt.show()

# %% [markdown]
# The bars match the ticks. The classifier rows grow with $n_k$; the class means vary much less
# (here they even peak at the middle class), and the product $w_k^\top\bar h_k$ increases with
# $n_k$. Only for small $\lambda$ do the norms approach the power laws $\|w_k\|^2 \propto \sqrt{n_k}$
# and $\|\bar h_k\|^2 \propto 1/\sqrt{n_k}$.
#
# ## The statements, one by one
#
# `tc.statement_table` gives the loss, NC1, the GOF distances (the authors' metric) and the largest
# relative error of any predicted matrix; `classes` gives the NC3 constants per class. The distance
# to the orthogonal frame does **not** vanish under imbalance: its limit is the distance of the GOF
# to the OF.

# %%
table = tc.statement_table(predictions, runs, frame="gof").assign(
    of=run.final_metrics()["nc2_of_w@1"], of_star=nc.geometry.gram_distance(prediction.w_gram, nc.geometry.orthogonal_frame(K)))
table[["loss", "f_star", "nc1", "frame", "error", "of", "of_star"]]

# %% tags=["hide-input"]
active, collapsed, row = classes[classes.active], classes[~classes.active], table.iloc[0]
nb.check("NC1 = 0", measured=row.nc1, tolerance=1e-12, kind="upper", source="paper-A")
nb.check("orthogonal W W^T, Hbar^T Hbar and W Hbar with class-dependent lengths (GOF distances)",
         measured=row.frame, tolerance=tolerance, kind="upper", source="paper-A")
nb.check("w_k proportional to hbar_k: ||w_k|| / ||hbar_k|| = s_k^2 + N lam_H (active classes)",
         measured=active.ratio, predicted=s_sq[on] + N * lambda_H, tolerance=tolerance, source="ours")
nb.check("w_k.hbar_k = 1 - N sqrt(lam_W lam_H / n_k) (active classes)", measured=active.wh,
         predicted=1 - N * np.sqrt(lambda_W * lambda_H / n[on]), tolerance=tolerance, source="ours")

# %% tags=["hide-input"]
nb.check("L-BFGS loss equals f*", measured=run.loss, predicted=prediction.loss, tolerance=1e-9, source="ours")
nb.check("no start goes below f* (relative undershoot)", measured=row.undershoot, tolerance=1e-12, kind="upper",
         source="ours")
nb.check("every Gram, the logits and sigma(W) equal the closed form", measured=row.error, tolerance=tolerance,
         kind="upper", source="ours")
nb.check("minority collapse: ||w_k||^2 and ||hbar_k||^2 vanish for collapsed classes",
         measured=np.r_[collapsed.w_sq, collapsed.h_sq], tolerance=1e-12, kind="upper", source="ours")
nb.check("the OF distance equals the GOF-OF distance", measured=row["of"], predicted=row.of_star,
         tolerance=tolerance, source="ours")

# %% [markdown]
# ## Continuous minority collapse
#
# Collapse sets in class by class as the common $\lambda = \lambda_W = \lambda_H$ grows: class $k$
# reaches zero at $\lambda_k = \sqrt{n_k}/N$. For $M = 1$ the norm goes to zero continuously. We
# re-solve at `sweep_points` values of $\lambda$ and lay the results on the closed-form curves.

# %%
thresholds = np.sqrt(n) / N
lambdas = np.geomspace(thresholds.min() / 3, thresholds.max() * 1.2, sweep_points)
sweep = tc.norm_sweep(counts, 1, lambdas, width, starts=1, init_std=0.5, seed=seed)
curve = pd.DataFrame([{"lambda": lam, "class": k, "w_sq_star": w} for lam in np.geomspace(lambdas[0], lambdas[-1], 300)
                      for k, w in enumerate(nc.theory.mse_minimizer(counts, 1, lambda_W=lam, lambda_H=lam).w_norm_sq)])

# %% mystnb={"figure": {"caption": "$\\|w_k\\|^2$ per class against the common $\\lambda$ (log scale). Lines: closed form; dots: L-BFGS. Each class shrinks continuously to zero at $\\lambda = \\sqrt{n_k}/N$ (dotted), smallest class first.", "name": "fig-14-collapse"}, "image": {"alt": "Line plot of the squared classifier norm of each class against lambda on a log axis, each reaching zero at a dotted threshold, with measured dots on the lines."}}
fig, ax = plt.subplots(figsize=(6.5, 3.6))
sns.lineplot(data=curve, x="lambda", y="w_sq_star", hue="class", palette="viridis", ax=ax)
sns.scatterplot(data=sweep, x="lambda", y="w_sq", hue="class", palette="viridis", s=50, ax=ax, legend=False)
for t in thresholds:
    ax.axvline(t, color="gray", ls=":", lw=0.8)
ax.set(xscale="log", xlabel=r"$\lambda_W = \lambda_H$", ylabel=r"$\|w_k\|^2$")
ax.legend(title="class $k$")
plt.show()

# %% [markdown]
# Each curve meets zero with a finite slope: the continuous collapse of the one-layer model. The
# deep model of the next chapter behaves differently.

# %% tags=["hide-input"]
nb.check("sweep: ||w_k||^2 of L-BFGS equals the closed form at every lambda and class", measured=sweep.w_sq,
         predicted=sweep.w_sq_star, tolerance=tolerance * sweep.w_sq_star.max(), kind="abs", source="ours")

# %% [markdown]
# ## Conclusion
#
# * Under imbalance the one-layer optimum is a general orthogonal frame: orthogonal classifier rows
#   and class means whose lengths depend on $n_k$ (the structure the abstract of paper A states),
#   with the lengths of the closed form and $w_k \propto \bar h_k$.
# * Classes with $n_k \le N^2\lambda_W\lambda_H$ collapse to zero, continuously in $\lambda$ (ours).
# * The orthogonal-frame metric of the balanced theory does not vanish here; its limit is the
#   GOF-OF distance.
#
# ## Claims

# %% tags=["hide-input"]
nb.finish()
