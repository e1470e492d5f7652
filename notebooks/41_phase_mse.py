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
# # Phase diagram: which classes survive imbalanced MSE
#
# Part I checks the imbalanced MSE closed forms of the deep linear unconstrained-feature model
# ({cite:t}`dang2023neural`, as reconstructed) at a handful of settings. Here we draw them
# everywhere: over the imbalance ratio and the weight decay, for depths $M = 1, 2, 3, 6$, we show
# how many classes the global minimizer sets to zero (classifier row and class mean both vanish:
# the strongest form of the minority collapse of {cite:t}`fang2021exploring`), where that starts, and the window in which the
# authors' code rule keeps a class that the global minimum drops. Every map is a few
# vectorised threshold comparisons; a handful of its points are then checked by L-BFGS from random
# starts.
#
# **Sources.** The per-class scalar problem and its threshold $\beta^*_M$ are our derivation from
# the reduction to target singular values (chapter 14); the code rule is the authors' `compute_x`.
# The maps and their checks are ours.

# %% [markdown]
# ```{prf:remark} Our result: the collapse map
# :label: rem-41-map
# Bias-free MSE, widths $d_m \ge K$, $\lambda_{W_m} = \lambda_H = \lambda$, class sizes $n_k$,
# $N = \sum_k n_k$. Class $k$ is at zero in the global minimizer iff
# $\beta_k = M N (N\lambda^{M+1})^{1/M} / n_k \ge \beta^*_M$ [ours: derived and verified here], and
# under the authors' rule iff $\beta_k > \varphi_{\max}(M)$ [authors' code: `compute_x`]. Since
# $\beta^*_M < \varphi_{\max}(M)$ for $M \ge 2$ (and they are equal for $M = 1$), the code rule keeps
# classes in a window $\lambda_{\rm global,k} \le \lambda \le \lambda_{\rm code,k}$ where the
# global minimum has already dropped them.
# ```

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, under a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; the float64 L-BFGS checks run on the CPU
seed = 0
num_classes = 8  # K
n_max = 20  # size of the largest class; the smallest is n_max / ratio (rounded, at least 1)
depths = [1, 2, 3, 6]  # M of the four panels
ratio_points = 24  # grid points of the imbalance ratio, from 1 to n_max
lambda_points = 40  # grid points of lambda
lambda_range = [1e-3, 0.1]  # smallest and largest lambda
check_points = [[5, 0.01, 1], [20, 0.03, 1], [3, 0.005, 2], [20, 0.01, 2], [20, 0.01, 3]]  # (ratio, lambda, M)
hard_points = [[5, 0.02, 2]]  # (ratio, lambda, M) where random starts are known to stop short
starts = 3  # random starts per checked point (best kept)
hops = 0  # basin hops after each start

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import ncbook as nc
from ncbook.experiments import phase as checks
from ncbook.theory import phase

nb = nc.notebook(profile=profile, device=device, seed=seed)
plt.rcParams.update({"font.size": 10, "hatch.color": "0.55"})

# %% [markdown]
# ## Class sizes
#
# The classes shrink geometrically from $n_1 = n_{\max}$ to $n_K \approx n_{\max}/\rho$, the
# long-tailed profile; at the largest ratio of the grid:

# %%
phase.imbalanced_counts(num_classes, n_max, float(n_max))

# %% [markdown]
# ## The map
#
# For every depth, `phase.mse_collapse_map` counts the classes at zero on the grid under both
# rules, and `phase.mse_collapse_boundaries` gives, per ratio, the weight decay at which the
# first class leaves (global and code rule).

# %%
ratios = np.geomspace(1.0, n_max, ratio_points)
lambdas = np.geomspace(*lambda_range, lambda_points)
grid = pd.concat([phase.mse_collapse_map(ratios, lambdas, m, num_classes, n_max) for m in depths])
bounds = pd.concat([phase.mse_collapse_boundaries(ratios, m, num_classes, n_max).assign(depth=m)
                    for m in depths])
nb.save("collapse_map.csv", grid)

# %% mystnb={"figure": {"caption": "Classes at zero in the global minimizer over the imbalance ratio and the weight decay, one panel per depth M. White line: the weight decay at which the smallest class leaves the global minimum; dashed black: the same for the authors' code rule. Hatched: the window where the two rules disagree (some class is zero at the global minimum but kept by the code rule).", "name": "fig-41-map"}}
fig, axes = plt.subplots(2, 2, figsize=(7, 6.4), sharex=True, sharey=True, layout="constrained")
cmap = plt.get_cmap("viridis", num_classes + 1)
for ax, m in zip(axes.flat, depths):
    part, edge = grid[grid.depth == m], bounds[bounds.depth == m]
    zeros = part.pivot(index="lambda", columns="ratio", values="zero_global")
    mesh = ax.pcolormesh(zeros.columns, zeros.index, zeros, cmap=cmap, vmin=-0.5,
                         vmax=num_classes + 0.5, shading="nearest")
    window = part.pivot(index="lambda", columns="ratio", values="window").astype(float)
    ax.contourf(window.columns, window.index, window, levels=[0.5, 1.5], hatches=["////"], colors="none")
    ax.plot(edge.ratio, edge.first_global, "w-", lw=2, label="first class at zero (global)")
    ax.plot(edge.ratio, edge.first_code, "k--", lw=1.5, label="first class at zero (code rule)")
    ax.set(xscale="log", yscale="log", title=f"$M = {m}$")
for ax in axes[-1]:
    ax.set_xlabel(r"imbalance ratio $\rho = n_1 / n_K$")
for ax in axes[:, 0]:
    ax.set_ylabel(r"$\lambda = \lambda_W = \lambda_H$")
fig.colorbar(mesh, ax=axes, label="classes at zero", ticks=range(num_classes + 1))
axes[0, 0].legend(fontsize=9, loc="lower left")
plt.show()

# %% [markdown]
# More imbalance means the smallest classes leave at a smaller weight decay (the white line falls
# with $\rho$), while the largest class holds on longer, so the band in which only part of the
# classes survive widens (the steps come from rounding the class sizes). The hatched window is
# empty for $M = 1$ and grows with depth. The table gives, per depth, the weight decay at which
# the first class leaves in the balanced and the most imbalanced case, and how far the code rule
# overshoots it: by the same factor $(\varphi_{\max}(M)/\beta^*_M)^{M/(M+1)}$ for every class and
# every ratio, since both thresholds are values of the same $\beta_k \propto \lambda^{(M+1)/M}$.

# %%
edges = bounds[bounds.ratio.isin([ratios[0], ratios[-1]])].assign(
    overshoot=lambda t: t.first_code / t.first_global)
edges[["depth", "ratio", "first_global", "all_global", "first_code", "overshoot"]].round(5)

# %% [markdown]
# ## Checking the map by optimisation
#
# At a few points, `checks.verify_mse` builds the class sizes, solves the full model with float64
# L-BFGS from random starts (three initial scales; the middle start uses continuation in
# $\lambda$, see chapter 15) and counts the classifier rows it leaves at zero. The point at
# $\rho = 20$, $\lambda = 0.01$, $M = 3$ lies inside the window: the code rule keeps two classes
# there that the global minimum drops.

# %%
search = checks.SearchConfig(starts=starts, hops=hops, seed=seed)
found = checks.verify_mse(check_points, num_classes, n_max, search=search)
found.drop(columns="counts")

# %% [markdown]
# The best start reaches the closed-form global loss and leaves exactly the predicted classes at
# zero; inside the window it ends below the code rule's point. Random starts are not always this
# lucky. For $M \ge 2$ a class at zero is a strict local minimum, and so is a class kept on the
# code rule's branch; next to a threshold both basins are large. At the points below (a window
# point for $M = 2$, 3 % from a threshold) the starts stop short, and we claim only that none of
# them goes below the closed form. (We do not check $M = 6$, where every start takes longer and
# stops short more often still.)

# %%
hard = checks.verify_mse(hard_points, num_classes, n_max, search=search)
hard.drop(columns="counts")

# %% [markdown]
# ## Claims

# %%
found = found.assign(below=(found.loss_global - found.loss_found) / found.loss_global)
everywhere = pd.concat([found, hard.assign(below=(hard.loss_global - hard.loss_found) / hard.loss_global)])
at = "rho = {ratio:g}, lambda = {lambda:g}, M = {depth}"
nb.check_rows(everywhere, claim=f"{at}: no start goes below the closed-form global minimum (relative gap)",
              source="ours", measured="below", tolerance=1e-9, kind="upper")
nb.check_rows(found, claim=f"{at}: L-BFGS from random starts reaches the closed-form global minimum",
              source="ours", measured="loss_found", predicted="loss_global", tolerance=1e-6)
nb.check_rows(found, claim=f"{at}: classes at zero, optimiser vs global rule", source="ours",
              measured="zero_found", predicted="zero_global", tolerance=0, kind="abs")

# %% [markdown]
# Two bookkeeping checks (closed form against closed form): the map's count agrees with
# `nc.theory.mse_minimizer` at the checked points, and for $M = 1$ the two rules never disagree.

# %%
on_grid = [phase.mse_collapse_map([r], [lam], m, num_classes, n_max).zero_global.iloc[0]
           for r, lam, m in check_points]
nb.check("map count equals mse_minimizer's at the checked points", source="consistency",
         measured=on_grid, predicted=found.zero_global.to_numpy(), tolerance=0, kind="abs")
nb.check("M = 1: no window (grid points where the rules disagree)", source="consistency",
         measured=float(grid[grid.depth == 1].window.sum()), predicted=0.0, tolerance=0, kind="abs")

# %% [markdown]
# ## Conclusion
#
# * Imbalance spreads the collapse over a band of weight decays: the minority classes leave first,
#   at a weight decay that falls with the imbalance ratio.
# * For $M \ge 2$ the authors' code rule keeps classes that the global minimum sets to zero, in a
#   window that widens with depth; a class inside it sits at a local, not the global, minimum.

# %%
nb.finish()
