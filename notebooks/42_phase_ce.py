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
# # Phase diagram: simplex ETF, orthoplex or nothing under cross-entropy
#
# For a deep linear head trained with cross-entropy and weight decay, is the simplex ETF optimal?
# {cite:t}`garrod2024persistence` report that paper A's cross-entropy result (its Theorem A.1, for
# a model with a last-layer bias) says yes, find a gap in its proof, and prove (their Theorem 1)
# that for widths at least $K$ no ETF (deep neural collapse) point is a global minimum of the deep
# linear CE unconstrained-feature model when $K \ge 4$ and $M \ge 3$, or $K \ge 6$ and $M = 2$. Chapter 13 compares two candidate
# families at a few settings. This chapter draws the comparison everywhere in $(\lambda, M)$ for
# $K = 4, 6, 10$, marks Garrod & Keating's scope, and checks the map by L-BFGS from random starts.

# %% [markdown]
# ```{prf:remark} The candidates and what is whose
# :label: rem-42-candidates
# Balanced classes ($n$ per class), $\lambda_{W_m} = \lambda_H = \lambda$, no bias. Three
# candidates [ours: closed forms of chapter 13]: the zero point (loss $\log K$), the best simplex
# ETF (rank $K-1$) and the best orthoplex (class $k$ has logit $a$, its antipodal partner $-a$,
# the rest $0$; rank $K/2$), each a one-dimensional minimisation over the logit scale $a$.
# * [literature: {cite:t}`garrod2024persistence`, Theorem 1] In the scope above, the ETF is not a
#   global minimum.
# * [ours: derived and verified here] As $\lambda \to 0$ the orthoplex beats the ETF iff
#   $2^{2/(M+1)-1} < 1 - 1/K$, which for $K \ge 4$ is exactly Garrod & Keating's scope; the map
#   below shows in which range of $\lambda$ it holds.
# * The map ranks three candidates only: it is an upper bound on the global minimum, and the
#   optimiser can go lower (it does for $K = 10$, $M \ge 3$, below).
# ```

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, under a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; the float64 L-BFGS checks run on the CPU
seed = 0
n_per_class = 5  # n, samples per class (maps and checks)
class_counts = [4, 6, 10]  # K of the three panels (even: the orthoplex needs pairs)
depths = [1, 2, 3, 4, 5, 6]  # M, rows of each panel
lambda_points = 24  # grid points of lambda
lambda_range = [1e-6, 1.0]  # smallest and largest lambda
check_points = [[4, 1, 1e-3], [4, 2, 1e-4], [4, 3, 1e-2], [6, 2, 1e-2], [10, 2, 1e-3], [10, 3, 1e-3]]  # (K, M, lambda)
starts = 3  # random starts per checked point (best kept)
hops = 1  # basin hops after each start

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

import ncbook as nc
from ncbook.experiments import phase as checks
from ncbook.theory import phase

nb = nc.notebook(profile=profile, device=device, seed=seed)
plt.rcParams.update({"font.size": 10, "hatch.color": "0.55"})

# %% [markdown]
# ## The map
#
# `phase.ce_phase_map` minimises each family's scalar loss at every $(M, \lambda)$ and names the
# lowest; `phase.ce_phase_boundaries` then locates every change of winner along $\lambda$ by
# bisection.

# %%
lambdas = np.geomspace(*lambda_range, lambda_points)
grid = pd.concat([phase.ce_phase_map(n_per_class, k, depths, lambdas) for k in class_counts])
grid["in_scope"] = [phase.garrod_keating_scope(k, m) for k, m in zip(grid.K, grid.depth)]
edges = phase.ce_phase_boundaries(grid, n_per_class)
nb.save("ce_phase_map.csv", grid)

# %% mystnb={"figure": {"caption": "Lowest of three candidates of the deep linear CE model over the weight decay and the depth M (grey: the zero point, blue: simplex ETF, orange: orthoplex), one panel per K. Hatched rows: the scope of Garrod & Keating's Theorem 1, where the ETF is not a global minimum. Black crosses: the points checked by L-BFGS below.", "name": "fig-42-map"}}
colours = ["#DDDDDD", "#0072B2", "#E69F00"]  # Okabe-Ito: zero, ETF, orthoplex
fig, axes = plt.subplots(len(class_counts), 1, figsize=(7, 2.4 * len(class_counts)), sharex=True,
                         layout="constrained")
for ax, k in zip(np.atleast_1d(axes), class_counts):
    part = grid[grid.K == k]
    code = part.pivot(index="depth", columns="lambda", values="winner").replace(
        {name: i for i, name in enumerate(phase.CE_PHASES)}).astype(float)
    ax.pcolormesh(code.columns, code.index, code, cmap=ListedColormap(colours), vmin=-0.5, vmax=2.5,
                  shading="nearest")
    first = min(m for m in depths if phase.garrod_keating_scope(k, m))
    ax.axhspan(first - 0.5, max(depths) + 0.5, fill=False, hatch="//", edgecolor="k", lw=0)
    marks = [(lam, m) for kk, m, lam in check_points if kk == k]
    if marks:
        ax.plot(*zip(*marks), "kx", ms=8, mew=2)
    ax.set(xscale="log", ylabel="$M$", yticks=depths, title=f"$K = {k}$")
np.atleast_1d(axes)[-1].set_xlabel(r"$\lambda = \lambda_W = \lambda_H$")
legend = [Patch(color=c, label=name) for c, name in zip(colours, ["zero", "simplex ETF", "orthoplex"])]
fig.legend(handles=legend + [Patch(fill=False, hatch="//", label="G&K Theorem 1")], loc="outside lower center",
           ncol=4, fontsize=9)
plt.show()

# %% [markdown]
# Inside Garrod & Keating's scope the orthoplex is below the ETF at every weight decay of the
# grid until the zero point takes over; for $M = 1$ the ETF wins until the zero point does. The
# only setting of the three panels where the winner flips between the two non-zero families is
# $K = 4$, $M = 2$, outside their scope. The located boundaries:

# %%
edges.pivot_table(index=["K", "depth"], columns=["below", "above"], values="lambda").round(6)

# %% [markdown]
# ## Checking the map by optimisation
#
# At each checked point `checks.verify_ce` runs float64 L-BFGS from random starts (three initial
# scales, one basin hop each, width $K$) and reports the best loss found next to the three
# candidates, with the numerical rank of the class-mean logits it ends at.

# %%
found = checks.verify_ce(check_points, n_per_class, checks.SearchConfig(starts=starts, hops=hops, seed=seed))
found = found.assign(below_best=(found.best - found.found) / found.best,
                     above_best=(found.found - found.best) / found.best,
                     below_etf=(found.etf - found.found) / found.etf,
                     in_scope=[phase.garrod_keating_scope(k, m) for k, m in zip(found.K, found.depth)])
found.round(6)

# %% [markdown]
# For $K = 4$ and $K = 6$ the optimiser ends exactly at the map's winner (ETF where the map says
# ETF, orthoplex of rank $K/2$ where it says orthoplex). For $K = 10$, $M = 3$ it goes *below*
# every candidate, at a point of rank below $K/2$: deeper heads prefer even lower rank, in line with
# the low-rank bias Garrod & Keating describe (a bounded number of non-negligible singular values
# as depth grows). There the map's orthoplex region means "the ETF is not optimal", not "the
# orthoplex is".
#
# ## Claims

# %%
at = "K = {K}, M = {depth}, lambda = {lambda:g}"
scope = found[found.in_scope]
nb.check_rows(scope, claim=f"{at}: L-BFGS from random starts ends below the best ETF (relative gap)",
              source="literature", cite="garrod2024persistence", measured="below_etf", tolerance=1e-6,
              kind="lower")
nb.check("closed forms: in scope, the ETF is never the best non-zero candidate (grid points where it is)",
         source="literature", cite="garrod2024persistence", predicted=0.0, tolerance=0, kind="abs",
         measured=float(((grid.winner == "etf") & grid.in_scope).sum()))

# %%
nb.check_rows(found, claim=f"{at}: L-BFGS reaches the map's best candidate or lower (relative excess)",
              source="ours", measured="above_best", tolerance=1e-6, kind="upper")
small = found[(found.K <= 6) | (found.depth <= 2)]
nb.check_rows(small, claim=at + ": nothing below the map's best candidate ({winner})", source="ours",
              measured="below_best", tolerance=1e-6, kind="upper")
deep = found[(found.K >= 10) & (found.depth >= 3)]
nb.check_rows(deep, claim=f"{at}: L-BFGS goes below every candidate (relative gap)", source="ours",
              measured="below_best", tolerance=1e-3, kind="lower")

# %% [markdown]
# The small-$\lambda$ rule against Garrod & Keating's scope, for even $K = 4, \dots, 12$ (the
# orthoplex pairs the classes) and $M = 1, \dots, 8$:

# %%
pairs = [(k, m) for k in range(4, 13, 2) for m in range(1, 9)]
limit_rule = [2 ** (2 / (m + 1) - 1) < 1 - 1 / k for k, m in pairs]
nb.check("the small-lambda rule 2^(p-1) < 1 - 1/K gives G&K's Theorem 1 scope (even K 4-12, M 1-8; disagreements)",
         source="literature", cite="garrod2024persistence", predicted=0.0, tolerance=0, kind="abs",
         measured=float(sum(r != phase.garrod_keating_scope(k, m) for r, (k, m) in zip(limit_rule, pairs))))

# %% [markdown]
# ## Conclusion
#
# * Our closed forms confirm Garrod & Keating's Theorem 1 and give its scope in $\lambda$: inside
#   it, the orthoplex is below the ETF at every weight decay where the optimum is non-zero.
# * Outside it ($K = 4$, $M = 2$) the ETF wins at small $\lambda$ and the orthoplex at larger
#   $\lambda$; for $M = 1$ the ETF is optimal until the zero point takes over.
# * The orthoplex is only the better of two candidates: for $K = 10$ and $M \ge 3$ the optimiser
#   finds lower points of even lower rank.

# %%
nb.finish()
