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
# # Balanced cross-entropy: the ETF for one layer, and what depth changes
#
# {cite:t}`dang2023neural` state that neural collapse also occurs for the cross-entropy (CE) loss
# in deep linear networks. {cite:t}`garrod2024persistence` report that this result is paper A's
# Theorem A.1 and prove that, once the linear head is deep enough, the simplex ETF is **not** the
# global minimum of the deep linear CE unconstrained-feature model. This chapter confirms their
# theorem numerically, and uses two scalar families of collapsed points to map, over the weight
# decay, where a lower-rank *orthoplex* beats the ETF.

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% [markdown]
# ```{admonition} What this chapter checks
# :class: tip
# * For one layer ($M = 1$) the ETF is the global minimizer: L-BFGS from random starts lands on it.
# * For $K = 4, M = 3$ and $K = 6, M = 2$, the cases of Garrod and Keating's theorem, L-BFGS finds
#   a point strictly below the best ETF, the orthoplex ({numref}`fig-13-logits`), while the ETF is
#   still a stationary point and a local minimum.
# * Over a grid of weight decays, where the orthoplex is below the ETF ({numref}`fig-13-gap` and the
#   scope table).
# ```

# %% [markdown]
# ```{prf:theorem} Paper A, as reconstructed: balanced CE (its Theorem A.1, as reported by Garrod & Keating)
# :label: thm-13-paper-a-ce
#
# * Global solutions of deep linear networks exhibit neural collapse under the CE loss, across the
#   linear layers {source}`paper: abstract`.
# * The CE result is Theorem A.1 in paper A's Appendix A, for a model with a last-layer bias (zero
#   at the optimum when it is regularised); it states that the global optimum is collapsed onto a
#   simplex ETF {source}`literature: garrod2024persistence` {cite:p}`garrod2024persistence`.
# ```
#
# ```{prf:theorem} Garrod & Keating (2025), Theorem 1
# :label: thm-13-garrod-keating
#
# For the deep linear CE unconstrained-feature model with $M$ weight matrices and widths $\ge K$:
# if $K \ge 4$ and $M \ge 3$, or $K \ge 6$ and $M = 2$, no collapsed simplex-ETF point is a global
# minimum {source}`literature: garrod2024persistence` {cite:p}`garrod2024persistence`; they also
# locate a gap in the proof of paper A's Theorem A.1. Their Theorem 4: the ETF point stays a critical point with a positive
# semi-definite Hessian at small $\lambda$ {source}`literature: garrod2024persistence`.
# ```
#
# ```{prf:proposition} Our result: two scalar families and the scope in $\lambda$
# :label: prop-13-scope
#
# Balanced classes, $n$ per class, no bias,
# $f = \frac1N\sum_i \mathrm{CE}(W_M\cdots W_1 h_{1,i}, y_i) + \sum_m\frac{\lambda_{W_m}}{2}\|W_m\|_F^2 +
# \frac{\lambda_H}{2}\|H_1\|_F^2$. With $\bar\lambda = (\lambda_{W_1}\cdots\lambda_{W_M}\lambda_H)^{1/(M+1)}$
# and $p = 2/(M+1)$, the least weight decay of any factorisation of given logits gives
# {source}`ours: derived and verified here`
# * ETF: logits $a(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)$, rank $K-1$,
#   $F_{\rm ETF}(a) = \log(1 + (K-1)e^{-a}) + \tfrac{M+1}{2}\bar\lambda(K-1)(\sqrt n\,a)^p$;
# * {term}`orthoplex <Orthoplex>`: class means $\pm e_j$ in $K/2$ dimensions, logit $a$ on the true class, $-a$ on its
#   antipode, $0$ elsewhere, rank $K/2$,
#   $F_{\rm orth}(a) = \log(1 + (K-2)e^{-a} + e^{-2a}) + \tfrac{M+1}{2}\bar\lambda\tfrac K2(2\sqrt n\,a)^p$.
#
# For $M = 1$ the problem is convex in the logits and the ETF is global. As $\lambda \to 0$ the
# orthoplex wins iff $2^{p-1} < 1 - 1/K$. For $K = 4, M = 3$ and $K = 6, M = 2$,
# $\min F_{\rm orth} < \min F_{\rm ETF}$ at **every** $\lambda$ of our grid where the ETF minimizer is
# non-zero; for $K = 4, M = 2$, outside the theorem's range, the ETF is lower at small $\lambda$ and
# the orthoplex at larger $\lambda$ {source}`ours: derived and verified here`. $\lambda$ and $n$
# enter only through $\bar\lambda\, n^{1/(M+1)}$, so the $\lambda$ ranges below move with $n$.
# ```
#
# Our model has no bias. Garrod and Keating report that the bias of paper A's model is zero at the
# optimum when it is regularised, so at the optimum the two models agree in that case.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; the float64 L-BFGS of this notebook runs on the CPU
seed = 0
n_per_class = 10  # n for the problems with four classes
n_per_class_k6 = 5  # n for the problem with six classes
lambda_m1 = 0.005  # common lambda of the one-layer run
lambda_m3 = 0.001  # common lambda of the run with K 4 and M 3
lambda_k6 = 0.01  # common lambda of the run with K 6 and M 2
starts = 2  # random starts per run (best kept)
sweep_points = 41  # lambdas in the scalar comparison figure and the scope table
margin = 1e-3  # smallest relative advantage of the orthoplex that counts as "strictly below"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import ncbook as nc
from ncbook.experiments import theorem_checks as tc

nb = nc.notebook(profile=profile, device=device, seed=seed)
gk = {"source": "literature", "cite": "garrod2024persistence"}
nc.plots.theme()

# %% [markdown]
# ## Where the orthoplex beats the ETF
#
# `nc.theory.ce_minimizer` minimises $F_{\rm ETF}$ or $F_{\rm orth}$ over $a \ge 0$ ($a = 0$ is the
# zero point, loss $\log K$). `tc.ce_scope` does this for both families over a grid of common
# weight decays $\lambda = \lambda_W = \lambda_H$ from $10^{-7}$ to $1$.

# %%
lambdas = np.geomspace(1e-7, 1.0, sweep_points)
cases = [(4, n_per_class, 1), (4, n_per_class, 2), (4, n_per_class, 3), (6, n_per_class_k6, 2)]
scope = pd.concat([tc.ce_scope(n, k, m, lambdas) for k, n, m in cases], ignore_index=True)
scope["case"] = "K=" + scope["K"].astype(str) + ", M=" + scope["M"].astype(str)

# %% mystnb={"figure": {"caption": "Relative gap $\\min F_{\\rm orth}/\\min F_{\\rm ETF} - 1$ against the common weight decay $\\lambda$, over the range where the ETF minimizer is non-zero. Negative: the orthoplex is lower. For $M = 1$ the ETF always wins; for $K = 4, M = 3$ and $K = 6, M = 2$ the orthoplex wins everywhere; for $K = 4, M = 2$ the sign changes.", "name": "fig-13-gap"}, "image": {"alt": "Line plot of the relative loss gap against lambda for four cases: M = 1 above zero, K = 4 M = 3 and K = 6 M = 2 below zero everywhere, K = 4 M = 2 crossing zero."}}
fig, ax = plt.subplots(figsize=(6.5, 3.6))
sns.lineplot(data=scope[scope["a_etf"] > 0], x="lambda", y="rel_gap", hue="case", ax=ax)
ax.axhline(0, color="k", lw=0.8)
ax.set(xscale="log", xlabel=r"$\lambda = \lambda_W = \lambda_H$",
       ylabel=r"$\min F_{\rm orth} / \min F_{\rm ETF} - 1$")
plt.show()

# %% [markdown]
# The curves stop where the ETF minimizer becomes zero. For $K = 4, M = 3$ and $K = 6, M = 2$ the
# gap is negative over the whole range, not only at small $\lambda$. The table condenses this:
# over the $\lambda$ where the ETF minimizer is non-zero, the smallest and largest relative
# advantage $1 - \min F_{\rm orth}/\min F_{\rm ETF}$ of the orthoplex.

# %%
summary = tc.ce_scope_summary(scope)
summary

# %% [markdown]
# Past the largest $\lambda$ with a non-zero ETF (`lambda_etf_max`) the orthoplex can still be
# non-zero (`lambda_orth_max`), and there it is below $\log K$, hence below the ETF family too.
# The small-$\lambda$ limit follows the leading-order rule $2^{p-1} < 1 - 1/K$, checked at
# $\lambda = 10^{-7}$ for $K \in \{4, 6, 8\}$ and $M \in \{1, 2, 3\}$:

# %%
limit = pd.concat([tc.ce_scope(5, k, m, [1e-7]) for k in (4, 6, 8) for m in (1, 2, 3)], ignore_index=True)
limit["rule"] = 2 ** (2 / (limit["M"] + 1) - 1) < 1 - 1 / limit["K"]
limit["agree"] = (limit["rule"] == limit["orthoplex_below"]).astype(float)
limit[["K", "M", "rule", "orthoplex_below"]].T

# %% tags=["hide-input"]
theorem_cases = summary.query("(K == 4 and M == 3) or (K == 6 and M == 2)")
nb.check_rows(theorem_cases, claim="K={K}, M={M}, n={n}: the orthoplex is below the ETF at every lambda where the "
              "ETF minimizer is non-zero (smallest relative advantage)", measured="advantage_min", tolerance=margin,
              kind="lower", source="ours")
nb.check_rows(summary.query("K == 4 and M == 2"), claim="K=4, M=2: the winner changes with lambda (ETF lower at "
              "small lambda: smallest advantage < 0)", measured="advantage_min", tolerance=0.0, kind="upper",
              source="ours")
nb.check_rows(summary.query("K == 4 and M == 2"), claim="K=4, M=2: the orthoplex is lower at larger lambda (largest "
              "advantage)", measured="advantage_max", tolerance=margin, kind="lower", source="ours")
nb.check("small-lambda winner follows 2^(p-1) < 1 - 1/K (fraction of 9 cases that agree)", measured=limit["agree"].mean(),
         predicted=1.0, tolerance=0.0, kind="abs", source="consistency")

# %% [markdown]
# ## Optimising the full problem
#
# The scalar comparison only ranks two families. The full objective may have other minima, so we
# optimise it directly with float64 L-BFGS from random starts (width $K + 1$, no constraint on the
# geometry) in three cases: $K = 4, M = 1$; $K = 4, M = 3$; $K = 6, M = 2$.

# %%
runs_cases = {"K=4, M=1": (4, n_per_class, 1, lambda_m1), "K=4, M=3": (4, n_per_class, 3, lambda_m3),
              "K=6, M=2": (6, n_per_class_k6, 2, lambda_k6)}
specs = {name: nc.models.UFMSpec([n] * k, m, k + 1, lambda_W=lam, lambda_H=lam, loss="ce")
         for name, (k, n, m, lam) in runs_cases.items()}
runs = {name: nc.models.solve(spec, starts=starts, init_std=0.5, seed=seed, track=False) for name, spec in specs.items()}
theory = {name: {g: nc.theory.ce_minimizer(n, k, m, lambda_W=lam, lambda_H=lam, geometry=g, widths=k + 1)
                 for g in nc.theory.CE_GEOMETRIES} for name, (k, n, m, lam) in runs_cases.items()}

# %%
logits = {name: nc.models.snapshot(run.model).logits for name, run in runs.items()}
singular = {name: np.linalg.svd(z, compute_uv=False) for name, z in logits.items()}
found = pd.DataFrame([{"case": name, "L-BFGS best": run.loss, "min F_ETF": theory[name]["etf"].loss,
                       "min F_orth": theory[name]["orthoplex"].loss, "logit singular values": np.round(singular[name], 4)}
                      for name, run in runs.items()])
found

# %% [markdown]
# The optimiser lands on the ETF for $M = 1$ (three equal logit singular values) and on the
# orthoplex for the two deep cases (only $K/2$ non-zero logit singular values, each $2a^*$).
# {numref}`fig-13-logits` shows the class-mean logits $W\bar H$ it finds.

# %% mystnb={"figure": {"caption": "Class-mean logits $W\\bar H$ found by L-BFGS (column $k$: the mean logits of class $k$). Top left: $M = 1$, a simplex ETF (one constant on the diagonal, another off it). Top right and bottom: the deep cases, an orthoplex: $+a$ on the true class, $-a$ on one antipodal class, $0$ elsewhere.", "name": "fig-13-logits"}, "image": {"alt": "Three annotated heatmaps of class-mean logits: a simplex pattern for M = 1, and for the deep cases one positive and one negative entry per column."}}
fig, axes = plt.subplots(2, 2, figsize=(9, 7.5))
axes[1, 1].axis("off")
for ax, (name, z) in zip(axes.flat, logits.items()):
    sns.heatmap(z, ax=ax, annot=True, fmt=".1f", cmap="vlag", center=0, cbar=False)
    ax.set(title=f"{name}: loss {runs[name].loss:.5f}", xlabel="class $k$", ylabel="logit")
fig.tight_layout()
plt.show()

# %% [markdown]
# In the deep cases each class has exactly one "enemy" class with the opposite logit, and is
# neutral to the others: half as many dimensions as the ETF, which is what makes the weight-decay
# penalty $\propto \sigma^{2/(M+1)}$ cheaper once $M \ge 2$.

# %% tags=["hide-input"]
one = theory["K=4, M=1"]["etf"]
nb.check("K=4, M=1: L-BFGS global value equals min F_ETF (the ETF is global)", measured=runs["K=4, M=1"].loss,
         predicted=one.loss, tolerance=1e-8, source="paper-A")
nb.check("K=4, M=1: class-mean logits equal a*(I - 11^T/K)", measured=logits["K=4, M=1"], predicted=one.logits,
         tolerance=1e-5, kind="abs", source="ours")

# %% tags=["hide-input"]
deep = pd.DataFrame([{"case": name, "loss": runs[name].loss, "f_orth": theory[name]["orthoplex"].loss,
                      "etf_excess": theory[name]["etf"].loss / runs[name].loss - 1,
                      "sv_error": np.abs(singular[name][: len(singular[name]) // 2] / (2 * theory[name]["orthoplex"].a) - 1).max(),
                      "sv_rest": singular[name][len(singular[name]) // 2:].max()} for name in ("K=4, M=3", "K=6, M=2")])
nb.check_rows(deep, claim="{case}: L-BFGS finds a point below the best ETF (relative excess of min F_ETF)",
              measured="etf_excess", tolerance=margin, kind="lower", **gk)
nb.check_rows(deep, claim="{case}: L-BFGS best equals min F_orth", measured="loss", predicted="f_orth",
              tolerance=1e-7, source="ours")
nb.check_rows(deep, claim="{case}: K/2 logit singular values equal 2 a* (largest relative error)", measured="sv_error",
              tolerance=1e-5, kind="upper", source="ours")
nb.check_rows(deep, claim="{case}: the other logit singular values vanish", measured="sv_rest", tolerance=1e-5,
              kind="upper", source="ours")

# %% [markdown]
# ## The ETF is still a local minimum
#
# From the explicit ETF point we check the gradient, then perturb every parameter by $10^{-3}$ of
# its size and optimise again (`tc.local_check`): the loss returns to $\min F_{\rm ETF}$, so in
# the deep cases the ETF is a local minimum that is not global.

# %%
local = pd.DataFrame([{"case": name, **tc.local_check(theory[name]["etf"].point(), "ce", seed=seed),
                       "f_etf": theory[name]["etf"].loss} for name in ("K=4, M=3", "K=6, M=2")])
local

# %% tags=["hide-input"]
nb.check_rows(local, claim="{case}: the ETF point is stationary (max |grad|)", measured="grad", tolerance=1e-7,
              kind="upper", **gk)
nb.check_rows(local, claim="{case}: the ETF is a local minimum (perturb, re-optimise, same loss)", measured="after",
              predicted="f_etf", tolerance=1e-9, source="ours")

# %% [markdown]
# ## Conclusion
#
# * $M = 1$: the simplex ETF is the global minimizer of the balanced CE model.
# * $K = 4, M = 3$ and $K = 6, M = 2$: the ETF remains a stationary point and a local minimum, but
#   L-BFGS from random starts finds the rank-$K/2$ orthoplex strictly below it, which confirms
#   Theorem 1 of {cite:t}`garrod2024persistence`. In our scalar families the orthoplex is lower at
#   every $\lambda$ of the grid where the ETF minimizer is non-zero, not only at small $\lambda$.
# * $K = 4, M = 2$ (not covered by that theorem): the winner depends on $\lambda$.
# * Paper A's reported experiments use MSE, so the chapters that reproduce its figures are
#   unaffected.
#
# ## Claims

# %% tags=["hide-input"]
nb.finish()
