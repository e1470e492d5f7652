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
# # Balanced MSE without bias: an orthogonal frame at every layer
#
# {cite:t}`dang2023neural` prove that the global minimizers of the deep linear
# unconstrained-feature model exhibit neural collapse across the linear layers. This chapter takes
# the first case, balanced classes, mean squared error and no bias, states the minimizer with all
# its constants, and checks every part of it against float64 L-BFGS from random starts.

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% [markdown]
# ```{admonition} What this chapter checks
# :class: tip
# * That the best of several L-BFGS starts reaches the closed-form minimum $f^*$ for $M = 1, 2, 3$
#   (look at the loss table and at {numref}`fig-11-curves`).
# * NC1, the orthogonal frame at **every** layer and NC3 (look at the Gram matrices of
#   {numref}`fig-11-gram`: equal diagonals, zero off-diagonals).
# * The zero minimizer above the threshold $\beta^*_M$ and the jump of the norm there for $M \ge 2$
#   ({numref}`fig-11-sweep`).
# * A width below $K$ ({ref}`sec-11-narrow`).
# ```

# %% [markdown]
# ```{prf:theorem} Paper A, as reconstructed: balanced MSE without bias
# :label: thm-11-balanced-mse
#
# Let $n_k = n$ for all $K$ classes, $N = Kn$, and
# $f = \frac{1}{2N}\|W_M\cdots W_1 H_1 - Y\|_F^2 + \sum_m \frac{\lambda_{W_m}}{2}\|W_m\|_F^2 +
# \frac{\lambda_H}{2}\|H_1\|_F^2$ with widths $d_m \ge K$. Put
# $\beta = MK\,(N\lambda_{W_1}\cdots\lambda_{W_M}\lambda_H)^{1/M}$, $\beta^*_1 = 1$,
# $\beta^*_M = (M-1)^{(M-1)/M}/M$ for $M \ge 2$, and, if $\beta < \beta^*_M$, let $x$ be the
# largest root of $\beta = Mx^{M-1}/(1+x^M)^2$. Every global minimizer has
# * **NC1** $H_m = \bar H_m \otimes \mathbf 1_n^\top$ at every layer $m$, and the NC geometry at every
#   linear layer {source}`paper: abstract`;
# * **NC2**: class means and classifier form an orthogonal frame ({term}`OF`),
#   $WW^\top = N\lambda_H x^M I_K$, $\bar H^\top \bar H = \frac{x^M}{N\lambda_H(1+x^M)^2} I_K$ for
#   $W = W_M\cdots W_1$, and the same orthogonality for $\bar H_m$ and $W_M \cdots W_m$ at every
#   layer (structure {source}`paper: abstract`; constants {source}`authors' code: compute_x`
#   {source}`ours: derived and verified here`);
# * **NC3** $W = N\lambda_H(1+x^M)\bar H^\top$ and $W\bar H = \frac{x^M}{1+x^M} I_K$
#   (structure {source}`paper: abstract`; constant {source}`ours: derived and verified here`);
# * equal singular values $\sqrt{\tau/\lambda_{W_m}}$ of every $W_m$ with
#   $\tau = (N\lambda_{W_1}\cdots\lambda_{W_M}\lambda_H)^{1/M} x$, and
#   $f^* = \frac12\left[\frac{1}{1+x^M} + \beta x\right]$ {source}`ours: derived and verified here`.
#
# If $\beta > \beta^*_M$ the only global minimizer is zero, $f^* = 1/2$; for $M \ge 2$ the norm
# jumps at $\beta^*_M$ instead of shrinking continuously; the width condition $d_m \ge K$ is our
# choice of hypothesis {source}`ours: derived and verified here`.
# ```
#
# Only the abstract of paper A could be read: it establishes neural collapse for the global
# solutions across the linear layers, not the constants. The constants follow the closed form in the
# authors' code (`compute_x`, written for imbalanced classes, with equal class sizes here) and our
# derivation; `ncbook.theory.mse_minimizer` implements them.

# %% [markdown]
# ```{prf:proposition} Our result: widths below $K$
# :label: prop-11-narrow
#
# A secondary summary of paper A describes the balanced MSE result as holding for arbitrary widths;
# we could not read the statement. In our closed form, for $r = \min_m d_m < K$ the global minimum
# keeps $r$ of the $K$ equal directions with the same $x$ as above, so
# $f^* = \frac{r}{K}\cdot\frac12\left[\frac{1}{1+x^M} + \beta x\right] + \frac{K-r}{K}\cdot\frac12$,
# NC1 still holds and $WW^\top$ has $r$ equal eigenvalues $N\lambda_H x^M$ and $K - r$ zeros
# {source}`ours: derived and verified here`.
# ```

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; the float64 L-BFGS of this notebook runs on the CPU
seed = 0
num_classes = 4  # K
n_per_class = 10  # n
depths = [1, 2, 3]  # M values to check
width = 6  # d_m for every layer, at least K
narrow_width = 2  # a width below K for the last section
lambda_W = 0.01  # weight decay, every layer
lambda_H = 0.01  # feature decay
starts = 3  # random starts per problem (best kept)
lbfgs_steps = 300  # outer float64 L-BFGS steps per start (5 evaluations each)
sweep_ratios = [0.4, 0.8, 1.2, 1.6]  # values of beta / beta*_M where depths 1 and 2 are re-solved
tolerance = 1e-6  # relative error allowed on matrices

# %% tags=["hide-input"]
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import ncbook as nc
from ncbook.experiments import theorem_checks as tc

nb = nc.notebook(profile=profile, device=device, seed=seed)
width = tc.check_width("width", width, num_classes)
narrow_width = tc.check_width("narrow_width", narrow_width, 1, num_classes - 1)
sweep_ratios = tc.check_list("sweep_ratios", sweep_ratios)
counts, N = [n_per_class] * num_classes, n_per_class * num_classes
nc.plots.theme()

# %% [markdown]
# ## The prediction and the optimisation
#
# For each depth, `tc.solve_depths` computes the closed form (`nc.theory.mse_minimizer`: $\beta$,
# the root $x$, the loss, the norms and an explicit minimizing point) and runs float64 L-BFGS from
# `starts` random initialisations (Gaussian entries of scale 0.5 and 1; every second start first
# solves the problem at $\lambda/10$, a continuation that avoids the zero local minima of deep
# models), keeping the best. Every four outer L-BFGS steps it records the loss and, per layer, NC1
# and the distances of the normalised Gram matrices to the orthogonal frame.

# %%
config = nc.optimize.MinimizeConfig("lbfgs", steps=lbfgs_steps, lr=1.0, inner=5, log_every=4)
predictions, runs = tc.solve_depths(counts, depths, width, lambda_W=lambda_W, lambda_H=lambda_H,
                                    config=config, starts=starts, init_std=(0.5, 1.0), seed=seed)
pd.DataFrame([{"M": m, "β": p.beta[0], "β*_M": nc.theory.beta_star(m), "x": p.x[0], "f*": p.loss,
               "best L-BFGS loss": runs[m].loss, "‖w_k‖²": p.w_norm_sq[0]} for m, p in predictions.items()])

# %% [markdown]
# {numref}`fig-11-curves` follows the deepest model through its first (plain random) start.

# %%
deep = max(depths)
first = runs[deep].history.query("start == 0 and step <= 120")
gap = first.query("metric == 'loss'").assign(gap=lambda t: t["value"] - predictions[deep].loss)
labels = [r"$f - f^*$", r"$\mathrm{NC1}(H_m)$", r"$\|\mathrm{nrm}(W_{M:m}W_{M:m}^\top) - I_K/\sqrt{K}\|_F$"]

# %% mystnb={"figure": {"caption": "First start of the deepest model (the first 120 outer L-BFGS steps, log scale). Top: loss minus the closed-form minimum $f^*$. Middle: NC1 of the features $H_m$ entering layer $m$. Bottom: distance of the normalised Gram matrix of $W_{M:m} = W_M\\cdots W_m$ to the orthogonal frame $I_K/\\sqrt{K}$.", "name": "fig-11-curves"}, "image": {"alt": "Three stacked log-scale line plots against the outer L-BFGS step: the gap to the closed-form loss falling to rounding level, and NC1 and the orthogonal-frame distance falling at every layer."}}
fig, axes = plt.subplots(3, 1, figsize=(6.5, 7.5), sharex=True)
sns.lineplot(data=gap, x="step", y="gap", ax=axes[0])
for ax, metric in zip(axes[1:], ["nc1", "nc2_of_w"]):
    sns.lineplot(data=first[first["metric"] == metric], x="step", y="value", hue="layer",
                 palette="crest", ax=ax).legend(title="layer $m$")
for ax, label in zip(axes, labels):
    ax.set(yscale="log", ylabel=label, xlabel="outer L-BFGS step")
fig.tight_layout()
plt.show()

# %% [markdown]
# L-BFGS reaches the closed-form value to machine precision within a few hundred evaluations, and
# NC1 and the distance to the orthogonal frame fall together at every layer: collapse and the
# orthogonal frame are one event.

# %% mystnb={"figure": {"caption": "Deepest model, normalised Gram matrices at every layer: classifier $W_M\\cdots W_m$ (panels W) and class means of $H_m$ (panels H) at each layer $m$, from L-BFGS. The orthogonal frame has diagonal entries $1/\\sqrt{K}$ and zeros elsewhere.", "name": "fig-11-gram"}, "image": {"alt": "Annotated heatmaps, one row per layer: normalised Gram matrices of the classifier and of the class means, equal diagonal entries and zeros elsewhere."}}
shot = nc.models.snapshot(runs[deep].model)
nc.plots.layer_gram_heatmaps(shot.w_grams, shot.h_grams)
plt.show()

# %% [markdown]
# Every layer shows the same picture, for the classifier and for the class means alike: equal
# diagonal entries and vanishing off-diagonal entries.
#
# ## The statements, one depth per row
#
# `tc.statement_table` reads off the best start what the theorem speaks about: the loss, NC1 and
# the distance to the orthogonal frame (largest over the layers), the NC3 distance
# $\|W/\|W\|_F - \bar H^\top/\|\bar H\|_F\|_F$ and the ratio $\|W\|_F/\|\bar H\|_F$, and the largest
# relative error of any predicted matrix (classifier and class-mean Grams per layer, the logits
# $W\bar H$, the singular values of each $W_m$) against the closed form.

# %%
nc3_ratio = {m: N * lambda_H * (1 + p.x[0] ** m) for m, p in predictions.items()}
table = tc.statement_table(predictions, runs, frame="of").assign(nc3_ratio_star=lambda t: t["M"].map(nc3_ratio))
table

# %% [markdown]
# Every error sits far below the tolerance: the numerical minimizer *is* the closed-form one, layer
# by layer. The claims below record each column.

# %% tags=["hide-input"]
paper, ours = {"source": "paper-A"}, {"source": "ours"}
nb.check_rows(table, claim="M={M}: NC1 = 0 at every layer", measured="nc1", tolerance=1e-12, kind="upper", **paper)
nb.check_rows(table, claim="M={M}: orthogonal frame for W_M..W_j and Hbar_j at every layer j", measured="frame",
              tolerance=tolerance, kind="upper", **paper)
nb.check_rows(table, claim="M={M}: NC3, W proportional to Hbar^T", measured="nc3", tolerance=tolerance,
              kind="upper", **paper)
nb.check_rows(table, claim="M={M}: L-BFGS loss equals the closed-form f*", measured="loss", predicted="f_star",
              tolerance=1e-9, **ours)

# %% tags=["hide-input"]
nb.check_rows(table, claim="M={M}: no start goes below f* (relative undershoot)", measured="undershoot",
              tolerance=1e-12, kind="upper", **ours)
nb.check_rows(table, claim="M={M}: NC3 constant ||W|| / ||Hbar|| = N lambda_H (1 + x^M)", measured="nc3_ratio",
              predicted="nc3_ratio_star", tolerance=tolerance, **ours)
nb.check_rows(table, claim="M={M}: every Gram, the logits and sigma(W_m) equal the closed form",
              measured="error", tolerance=tolerance, kind="upper", **ours)

# %% [markdown]
# ## Across the threshold
#
# Above $\beta^*_M$ the minimizer is zero. We move the common $\lambda = \lambda_W = \lambda_H$ so
# that $\beta/\beta^*_M$ runs over `sweep_ratios` and compare the optimised $\|w_k\|^2$ with the
# closed form. For $M = 1$ the norm falls continuously to zero; for $M = 2$ it jumps, and
# $w_k^\top\bar h_k$ just below the threshold is $(M-1)/M = 1/2$.
#
# For $M \ge 2$ zero is not the only local minimum above the threshold. While $\beta$ stays below
# $\max_x M x^{M-1}/(1+x^M)^2$ (1.30 $\beta^*_2$), each direction may also rest on the largest root
# of its own scalar problem, at a loss above $1/2$, and a point with any $r$ of the $K$ directions
# there is a local minimum: its loss is $\frac12 + \frac rK\left(\frac12\left[\frac{1}{1+x^M} +
# \beta x\right] - \frac12\right)$ {source}`ours: derived and verified here`. That weight decay
# makes zero a bad local minimum of deep linear networks is known {cite:p}`ziyin2022exact`; the
# count of these minima and their losses are our reading of the closed form. Large random starts
# stop at such points, so the starts include a small scale (0.05), which falls to zero. Column
# `stuck` counts the starts that stopped above $f^*$; `branch_gap` is the largest relative distance
# of any start's loss to the nearest of these *branch points* (`tc.branch_losses`).

# %%
common_lambda = partial(tc.lambda_at_ratio, n_per_class=n_per_class, num_samples=N)
sweep = pd.concat([tc.norm_sweep(counts, m, [common_lambda(m, r) for r in sweep_ratios], width, starts=starts,
                                 init_std=(0.05, 0.5, 1.0, 2.0), seed=seed).assign(M=m) for m in (1, 2)])
sweep = sweep.query("`class` == 0").assign(ratio=np.tile(sweep_ratios, 2), w_error=lambda t: (t.w_sq - t.w_sq_star).abs())

# %%
curve = pd.DataFrame([{"M": m, "ratio": r, "w_sq_star": nc.theory.mse_minimizer(
    counts, m, lambda_W=common_lambda(m, r), lambda_H=common_lambda(m, r)).w_norm_sq[0]}
    for m in (1, 2) for r in np.linspace(0.2, 1.8, 321)])

# %% mystnb={"figure": {"caption": "Squared classifier row norm $\\|w_k\\|^2$ against $\\beta/\\beta^*_M$. Lines: closed form; dots: best of the L-BFGS starts. $M = 1$ shrinks continuously to zero at the threshold; $M = 2$ jumps.", "name": "fig-11-sweep"}, "image": {"alt": "Line plot of the squared classifier row norm against beta over beta-star for M = 1 and M = 2 with measured dots on the lines; the M = 2 curve drops to zero abruptly at 1."}}
fig, ax = plt.subplots(figsize=(6, 3.4))
sns.lineplot(data=curve, x="ratio", y="w_sq_star", hue="M", palette="deep", ax=ax)
sns.scatterplot(data=sweep, x="ratio", y="w_sq", hue="M", palette="deep", s=60, ax=ax, legend=False)
ax.axvline(1.0, color="k", ls=":")
ax.set(xlabel=r"$\beta / \beta^*_M$", ylabel=r"$\|w_k\|^2$")
plt.show()

# %% [markdown]
# The dots sit on the lines on both sides of the threshold. Below it the optimum is the orthogonal
# frame of the first part; above it, the zero point wins. The jump for $M = 2$ is where depth
# changes the nature of the collapse.

# %%
sweep[["M", "ratio", "f", "f_star", "w_sq", "w_sq_star", "stuck", "branch_gap"]]

# %% [markdown]
# Every start, the best and the stuck ones alike, ends on a branch point: the local minima that
# gradient methods meet in this model are the scalar problem's roots, direction by direction.

# %% tags=["hide-input"]
nb.check_rows(sweep, claim="M={M}, beta/beta* = {ratio:g}: L-BFGS loss equals f*", measured="f", predicted="f_star",
              tolerance=1e-9, source="ours")
nb.check_rows(sweep, claim="M={M}, beta/beta* = {ratio:g}: ||w_k||^2 equals the closed form", measured="w_error",
              tolerance=tolerance * max(sweep["w_sq_star"].max(), 1.0), kind="upper", source="ours")
nb.check_rows(sweep, claim="M={M}, beta/beta* = {ratio:g}: every start stops at a branch point (relative gap)",
              measured="branch_gap", tolerance=1e-9, kind="upper", source="ours")

# %% [markdown]
# (sec-11-narrow)=
# ## A width below $K$
#
# {prf:ref}`prop-11-narrow` states the minimizer when every width is $r$ = `narrow_width` $< K$.
# Which $r$ of the $K$ equal directions are kept is arbitrary, so we compare spectra (eigenvalues of
# the Grams, singular values) rather than the matrices themselves.

# %%
m = depths[len(depths) // 2]
narrow_prediction, narrow = tc.solve_depths(counts, [m], narrow_width, lambda_W=lambda_W, lambda_H=lambda_H,
                                            starts=max(starts, 3), init_std=(0.5, 1.0), seed=seed)
narrow_table = tc.statement_table(narrow_prediction, narrow, frame="of").assign(
    f_full=predictions[m].loss, eigenvalues=[np.round(np.linalg.eigvalsh(nc.models.snapshot(narrow[m].model).w_grams[0]), 6)])
narrow_table[["M", "f_star", "loss", "f_full", "nc1", "spectrum_error", "eigenvalues"]]

# %% [markdown]
# The optimum keeps `narrow_width` directions: $WW^\top$ has that many equal eigenvalues and the
# rest are zero, the loss is above the full-width $f^*$ (column `f_full`) and equals the
# rank-limited closed form; NC1 still holds.

# %% tags=["hide-input"]
nb.check_rows(narrow_table, claim=f"M={{M}}, widths {narrow_width} < K: L-BFGS loss equals the rank-limited f*",
              measured="loss", predicted="f_star", tolerance=1e-9, source="ours")
nb.check_rows(narrow_table, claim=f"M={{M}}, widths {narrow_width} < K: NC1 = 0 at every layer", measured="nc1",
              tolerance=1e-12, kind="upper", source="ours")
nb.check_rows(narrow_table, claim=f"M={{M}}, widths {narrow_width} < K: spectra of the Grams and sigma(W_m) "
              "equal the closed form", measured="spectrum_error", tolerance=tolerance, kind="upper", source="ours")

# %% [markdown]
# ## Conclusion
#
# * For balanced classes without bias, numerical optimisation from random starts lands exactly on
#   the closed-form global minimizer: NC1, an orthogonal frame at every layer, NC3 and balanced
#   singular values, with the loss equal to $f^*$ to $10^{-9}$.
# * Above $\beta^*_M$ the minimizer is zero; for $M \ge 2$ the norm jumps there rather than
#   shrinking continuously (ours).
# * Every start, including those that miss the global minimum, stops at a branch point: each
#   direction at zero or on the largest root of its scalar problem (ours).
# * With widths below $K$ the optimum keeps as many equal directions as the width allows (ours).
#
# ## Claims

# %% tags=["hide-input"]
nb.finish()
