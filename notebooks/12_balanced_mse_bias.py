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
# # Balanced MSE with a bias: the simplex ETF
#
# Adding an unpenalised bias to the last layer changes the geometry of the optimum. With balanced
# classes, mean squared error and a free last-layer bias, the global minimizers of the deep linear
# unconstrained-feature model of {cite:t}`dang2023neural` collapse onto a **simplex equiangular
# tight frame** (ETF) at every layer instead of the orthogonal frame of
# {prf:ref}`thm-11-balanced-mse`. We state the minimizer and check every statement against float64
# L-BFGS from random starts.

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% [markdown]
# ```{admonition} What this chapter checks
# :class: tip
# * The best L-BFGS start reaches $f^*$ for $M = 1, 2, 3$, with bias $b^* = \mathbf 1/K$ and zero
#   global feature mean.
# * The simplex ETF at every layer: negative, equal off-diagonal entries in {numref}`fig-12-gram`
#   and $K - 1$ equal eigenvalues plus a zero in {numref}`fig-12-spectra`.
# * That widths $K - 1$ are enough ({ref}`sec-12-narrow`).
# ```

# %% [markdown]
# ```{prf:theorem} Paper A, as reconstructed: balanced MSE with a bias
# :label: thm-12-balanced-mse-bias
#
# As in {prf:ref}`thm-11-balanced-mse`, but with
# $f = \frac{1}{2N}\|W_M\cdots W_1 H_1 + b\mathbf 1^\top - Y\|_F^2 +
# \sum_m\frac{\lambda_{W_m}}{2}\|W_m\|_F^2 + \frac{\lambda_H}{2}\|H_1\|_F^2$ (the bias $b$ is not
# penalised) and widths $d_m \ge K-1$. With $\beta$, $\beta^*_M$ and $x$ as there and
# $\beta < \beta^*_M$, every global minimizer has
# * **NC1** at every layer, and the NC geometry at every linear layer {source}`paper: abstract`;
# * **NC2 (simplex ETF)** $WW^\top = N\lambda_H x^M\,(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)$ and
#   $\bar H^\top\bar H = \frac{x^M}{N\lambda_H(1+x^M)^2}(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)$, so
#   $\cos(w_j, w_k) = -\frac{1}{K-1}$, the same at every layer (structure {source}`paper: abstract`;
#   constants {source}`ours: derived and verified here`);
# * **NC3** $W \propto \bar H^\top$ and $W\bar H = \frac{x^M}{1+x^M}(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)$
#   (structure {source}`paper: abstract`; constant {source}`ours: derived and verified here`);
# * $b^* = \frac1K\mathbf 1_K$, a zero global feature mean $h_{m,G} = 0$ at every layer, and
#   $f^* = \frac{K-1}{K}\cdot\frac12\left[\frac{1}{1+x^M} + \beta x\right]$; the width condition
#   $d_m \ge K - 1$ {source}`ours: derived and verified here`.
# ```
#
# The bias absorbs the mean of the targets; what is left, the centred one-hot matrix, has $K-1$
# equal singular values $\sqrt n$ and one zero, which is why the frame loses one dimension and only
# $K - 1$ directions are active, each exactly as in the bias-free problem.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; the float64 L-BFGS of this notebook runs on the CPU
seed = 0
num_classes = 4  # K
n_per_class = 10  # n
depths = [1, 2, 3]  # M values to check
width = 6  # d_m for every layer, at least K - 1
lambda_W = 0.01  # weight decay, every layer
lambda_H = 0.01  # feature decay
starts = 2  # random starts per problem (best kept); odd starts use continuation in lambda
lbfgs_steps = 60  # outer float64 L-BFGS steps per start (up to 50 evaluations each)
tolerance = 1e-6  # relative error allowed on matrices

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import ncbook as nc
from ncbook.experiments import theorem_checks as tc

nb = nc.notebook(profile=profile, device=device, seed=seed)
width = tc.check_width("width", width, num_classes - 1)
counts, K = [n_per_class] * num_classes, num_classes
nc.plots.theme()

# %% [markdown]
# ## The prediction and the optimisation
#
# `nc.theory.mse_minimizer(..., bias=True)` works with the singular directions of the centred
# targets; `tc.solve_depths` adds float64 L-BFGS from `starts` random initialisations per depth,
# bias included, best kept. The table lists the optimal loss with and without the bias.

# %%
config = nc.optimize.MinimizeConfig("lbfgs", steps=lbfgs_steps, lr=1.0, log_every=10)
predictions, runs = tc.solve_depths(counts, depths, width, lambda_W=lambda_W, lambda_H=lambda_H, bias=True,
                                    config=config, starts=starts, init_std=0.5, seed=seed)
bias_free = {m: nc.theory.mse_minimizer(counts, m, lambda_W=lambda_W, lambda_H=lambda_H, widths=width) for m in depths}
pd.DataFrame([{"M": m, "β": p.beta[0], "x": p.x[0], "f* (bias)": p.loss, "f* (no bias)": bias_free[m].loss,
               "best L-BFGS loss": runs[m].loss, "active directions": int(p.direction_active.sum())}
              for m, p in predictions.items()])

# %% [markdown]
# The closed forms with and without the bias differ by the factor $(K-1)/K$, a bookkeeping
# identity of our formulas (a `consistency` claim, not a check of the paper).

# %% tags=["hide-input"]
nb.check_rows([{"M": m, "ratio": p.loss / bias_free[m].loss} for m, p in predictions.items()],
              claim="M={M}: closed form f* with bias = (K-1)/K f* without", measured="ratio",
              predicted=(K - 1) / K, tolerance=1e-12, source="consistency")

# %% [markdown]
# {numref}`fig-12-gram` shows, for the deepest model, the normalised Gram matrices of the
# classifier and of the centred class means at every layer.

# %% mystnb={"figure": {"caption": "Deepest model, normalised Gram matrices at every layer: classifier $W_M\\cdots W_m$ (panels W) and class means of $H_m$ (panels H; their global mean is zero at the optimum) at each layer $m$. The simplex ETF has diagonal $(K-1)/(K\\sqrt{K-1})$ and off-diagonal $-1/(K\\sqrt{K-1})$.", "name": "fig-12-gram"}, "image": {"alt": "Annotated heatmaps, one row per layer: normalised Gram matrices with equal positive diagonal and equal negative off-diagonal entries."}}
deep = max(depths)
shot = nc.models.snapshot(runs[deep].model)
nc.plots.layer_gram_heatmaps(shot.w_grams, shot.h_grams, fmt=".3f")
plt.show()

# %% [markdown]
# Unlike the bias-free case, the off-diagonal entries are now negative and all equal: the classes
# push each other apart as far as $K$ vectors with zero sum can. {numref}`fig-12-spectra` lays the
# spectra side by side.

# %%
spectra = pd.DataFrame([{"M": m, "source": source, "eigenvalue": value} for m in depths
                        for source, gram in [("L-BFGS", nc.models.snapshot(runs[m].model).w_grams[0]),
                                             ("closed form", predictions[m].w_gram)]
                        for value in np.linalg.eigvalsh(gram)])

# %% mystnb={"figure": {"caption": "Eigenvalues of $WW^\\top$ for each depth $M$: L-BFGS (blue) against the closed form (black). $K-1$ equal eigenvalues and one zero: the simplex ETF.", "name": "fig-12-spectra"}, "image": {"alt": "Dot plot of the eigenvalues of W W-transpose for each depth: K - 1 equal eigenvalues and one zero, the measured dots on the closed-form dots."}}
fig, ax = plt.subplots(figsize=(6, 3.2))
sns.stripplot(data=spectra, x="M", y="eigenvalue", hue="source", dodge=True, ax=ax,
              palette=["tab:blue", "k"], marker="o", size=7, jitter=False)
ax.set(xlabel="depth $M$", ylabel=r"eigenvalue of $WW^\top$")
plt.show()

# %% [markdown]
# Blue and black dots coincide. Increasing depth raises the common eigenvalue $N\lambda_H x^M$; the
# zero eigenvalue belongs to the all-ones direction that the bias takes over.
#
# ## The statements, one depth per row
#
# `tc.statement_table` reads off the best start the loss, NC1 and the largest ETF distance over the
# layers, the NC3 distance, the bias error $\max_k |b_k - 1/K|$, the global feature mean relative
# to the class means, and the largest relative error of any predicted matrix against the closed
# form; we add the largest deviation of $\cos(w_j, w_k)$ from $-1/(K-1)$.

# %%
gaps = [tc.classifier_cosine_gap(r.model) for r in runs.values()]
table = tc.statement_table(predictions, runs, frame="etf").assign(cosine_gap=gaps)
table

# %% [markdown]
# Every error is at the level of double precision. The starts' losses agree with $f^*$ to about
# $10^{-13}$ relative, the float64 floor of this objective, and a loss that flat fixes the matrices
# only to about $10^{-6}$: at the full profile ($K = 10$) the M = 3 error was $1.07\cdot10^{-6}$ after
# 240 or 600 L-BFGS steps and $4.0\cdot10^{-7}$ after 60, depending on which start wins in the last
# bits. The full profile therefore allows $10^{-5}$ on the matrices, the smoke profile $10^{-6}$.
# The claims record each column.

# %% tags=["hide-input"]
paper = {"source": "paper-A", "kind": "upper", "tolerance": tolerance}
nb.check_rows(table, claim="M={M}: NC1 = 0 at every layer", measured="nc1", **paper | {"tolerance": 1e-12})
nb.check_rows(table, claim="M={M}: simplex ETF for W_M..W_j and centred Hbar_j at every layer j", measured="frame",
              **paper)
nb.check_rows(table, claim="M={M}: cos(w_j, w_k) = -1/(K-1) (largest deviation)", measured="cosine_gap", **paper)
nb.check_rows(table, claim="M={M}: NC3, W proportional to Hbar^T", measured="nc3", **paper)

# %% tags=["hide-input"]
ours = {"source": "ours", "kind": "upper", "tolerance": tolerance}
nb.check_rows(table, claim="M={M}: L-BFGS loss equals the closed-form f*", measured="loss", predicted="f_star",
              source="ours", tolerance=1e-9)
nb.check_rows(table, claim="M={M}: no start goes below f* (relative undershoot)", measured="undershoot",
              **ours | {"tolerance": 1e-12})
nb.check_rows(table, claim="M={M}: bias b* = 1/K (largest deviation)", measured="bias_error", **ours)
nb.check_rows(table, claim="M={M}: global feature mean h_G = 0 (relative to the class means)",
              measured="global_mean", **ours)
nb.check_rows(table, claim="M={M}: every Gram, the logits, sigma(W_m) and b equal the closed form",
              measured="error", **ours)

# %% [markdown]
# (sec-12-narrow)=
# ## Width $K-1$ is enough
#
# With a bias only $K-1$ directions are needed, so the theorem holds for widths $d_m = K-1$ too.
# We re-solve the middle depth with every width equal to $K-1$.

# %%
m = depths[len(depths) // 2]
narrow_prediction, narrow = tc.solve_depths(counts, [m], K - 1, lambda_W=lambda_W, lambda_H=lambda_H, bias=True,
                                            starts=max(starts, 2), init_std=0.5, seed=seed)
narrow_table = tc.statement_table(narrow_prediction, narrow, frame="etf").assign(f_full_width=predictions[m].loss)
narrow_table[["M", "f_star", "f_full_width", "loss", "frame", "error"]]

# %% [markdown]
# The narrow model reaches the same $f^*$ as the wide one, and the same ETF.

# %% tags=["hide-input"]
nb.check_rows(narrow_table, claim="M={M}, widths K-1: L-BFGS loss equals the full-width f*", measured="loss",
              predicted="f_full_width", tolerance=1e-9, source="ours")
nb.check_rows(narrow_table, claim="M={M}, widths K-1: every matrix equals the closed form (the same ETF)",
              measured="error", tolerance=tolerance, kind="upper", source="ours")

# %% [markdown]
# ## Conclusion
#
# * With an unpenalised bias the optimum is a simplex ETF at every layer, with NC1 and NC3 (the
#   structure the abstract of paper A states), $b^* = \mathbf 1/K$ and zero global feature mean; the
#   loss is $(K-1)/K$ of the bias-free loss.
# * Widths $K-1$ suffice, and the numerical optimum matches the closed form to the optimiser's
#   precision.
#
# ## Claims

# %% tags=["hide-input"]
nb.finish()
