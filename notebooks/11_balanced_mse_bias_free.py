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
# This chapter reproduces the first theorem of {cite:t}`dang2023neural`: for balanced classes,
# mean squared error and no bias, every global minimizer of the deep linear unconstrained-feature
# model collapses each class to its mean (NC1), and at **every** layer the class means and the
# classifier form an *orthogonal frame* (OF) with classifier rows proportional to the class means
# (NC3), unless the regularisation is so strong that the minimizer is zero. We compute the exact
# minimizer, minimise the objective numerically from random starts, and compare NC1, the Gram
# matrices of every layer, the singular values of every weight matrix, and the loss value.

# %% [markdown]
# ```{admonition} Theorem (paper A, balanced MSE, bias-free; Thm 3.1 (?))
# :class: important
# Let $n_k = n$ for all $K$ classes, $N = Kn$, widths $d_m \ge K$, and
# $f = \frac{1}{2N}\|W_M\cdots W_1 H_1 - Y\|_F^2 + \sum_m \frac{\lambda_{W_m}}{2}\|W_m\|_F^2 +
# \frac{\lambda_H}{2}\|H_1\|_F^2$. Put
# $\beta = MK\,(N\lambda_{W_1}\cdots\lambda_{W_M}\lambda_H)^{1/M}$ and
# $\beta^*_1 = 1$, $\beta^*_M = (M-1)^{(M-1)/M}/M$ for $M \ge 2$.
# If $\beta < \beta^*_M$, let $x$ be the largest root of $\beta = Mx^{M-1}/(1+x^M)^2$. Then every
# global minimizer has
# * **NC1** $H_m = \bar H_m \otimes \mathbf 1_n^\top$ at every layer $m$;
# * **NC2 (OF)** $WW^\top = N\lambda_H x^M I_K$ and
#   $\bar H^\top \bar H = \frac{x^M}{N\lambda_H(1+x^M)^2} I_K$, with $W = W_M\cdots W_1$; the same
#   orthogonality holds for $\bar H_m$ and for $W_M \cdots W_m$ at every layer;
# * **NC3** $W = N\lambda_H(1+x^M)\bar H^\top$ and $W\bar H = \frac{x^M}{1+x^M} I_K$;
# * every $W_m$ has $K$ equal singular values $\sqrt{\tau/\lambda_{W_m}}$ with
#   $\tau = (N\lambda_{W_1}\cdots\lambda_{W_M}\lambda_H)^{1/M} x$ (balancedness), and
#   $f^* = \frac12\left[\frac{1}{1+x^M} + \beta x\right]$.
#
# If $\beta > \beta^*_M$ the only global minimizer is zero, with $f^* = 1/2$. For $M \ge 2$ the
# norm jumps at $\beta^*_M$ instead of shrinking continuously.
# ```
#
# The constants come from our reconstruction of the theorem (the paper's text states the structure;
# the authors' code fixes the constants) and were checked independently; see
# `ncbook.theory.mse_minimizer`.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; this notebook's float64 L-BFGS runs on the CPU
seed = 0
num_classes = 4  # K
n_per_class = 10  # n
depths = [1, 2, 3]  # M values to check
width = 6  # d_m for every layer, at least K
lambda_W = 0.01  # weight decay, every layer
lambda_H = 0.01  # feature decay
starts = 3  # random starts per problem (best kept)
sweep_ratios = [0.4, 0.8, 1.2, 1.6]  # values of beta / beta*_M where depths 1 and 2 are re-solved
tolerance = 1e-6  # relative error allowed on matrices (L-BFGS stops at gradient 1e-12)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import ncbook as nc

torch_device = nc.profiles.setup(profile, device, seed)
num_classes = nc.profiles.check_int("num_classes", num_classes, low=2, high=64)
n_per_class = nc.profiles.check_int("n_per_class", n_per_class, low=1)
depths = [nc.profiles.check_int(f"depths[{i}]", m, low=1, high=8) for i, m in enumerate(depths)]
width = nc.profiles.check_int("width", width, low=num_classes)
lambda_W = nc.profiles.check_float("lambda_W", lambda_W, low=0.0, low_open=True)
lambda_H = nc.profiles.check_float("lambda_H", lambda_H, low=0.0, low_open=True)
starts = nc.profiles.check_int("starts", starts, low=1)
sweep_ratios = [nc.profiles.check_float(f"sweep_ratios[{i}]", r, low=0.0, low_open=True)
                for i, r in enumerate(sweep_ratios)]
tolerance = nc.profiles.check_float("tolerance", tolerance, low=0.0, low_open=True)
ledger = nc.claims.Ledger("11_balanced_mse_bias_free", profile, paper="A")
counts = [n_per_class] * num_classes
sns.set_theme(style="whitegrid")

# %% [markdown]
# ## The prediction
#
# `nc.theory.mse_minimizer` returns, for each depth, $\beta$, the root $x$, the optimal loss, the
# norms and an explicit minimizing point (all $W_m$ and $H_1$). The threshold column tells whether
# the minimizer is non-zero.

# %%
predictions = {m: nc.theory.mse_minimizer(counts, m, lambda_W=lambda_W, lambda_H=lambda_H, widths=width) for m in depths}
if not all(p.direction_active.any() for p in predictions.values()):
    raise ValueError("`lambda_W`/`lambda_H` put some depth above beta*_M (zero minimizer); lower them")
pd.DataFrame([{"M": m, "beta": p.beta[0], "beta*_M": nc.theory.beta_star(m), "x": p.x[0],
               "f*": p.loss, "||w_k||^2": p.w_norm_sq[0], "||hbar_k||^2": p.h_norm_sq[0],
               "w_k.hbar_k": p.wh[0]} for m, p in predictions.items()])

# %% [markdown]
# ## Optimising from random starts
#
# For each depth we run float64 L-BFGS from `starts` random initialisations (Gaussian entries of
# scale 0.5 and 1; every second start first solves the problem at $\lambda/10$, a continuation that
# avoids the zero local minima of deep models) and keep the best. `nc.models.solve` records the loss
# and, per layer, NC1 and the distances of the normalised Gram matrices to the OF every two outer
# L-BFGS iterations of at most five objective evaluations each.

# %%
config = nc.optimize.MinimizeConfig("lbfgs", steps=300, lr=1.0, inner=5, log_every=2)
runs = {m: nc.models.solve(nc.models.UFMSpec(counts, m, width, lambda_W=lambda_W, lambda_H=lambda_H),
                           config=config, starts=starts, init_std=(0.5, 1.0), seed=seed,
                           reference=predictions[m]) for m in depths}
pd.DataFrame([{"M": m, "best loss": r.loss, "closed form": predictions[m].loss,
               "losses of all starts": np.round(r.final_losses, 8)} for m, r in runs.items()])

# %% [markdown]
# {numref}`fig-11-curves` follows the deepest model through the optimisation from its first
# (plain random) start: the gap to the closed-form loss, NC1 of the features entering each layer,
# and the distance of the classifier acting on each layer to the orthogonal frame.

# %% mystnb={"figure": {"caption": "First start of the deepest model (the first 120 outer L-BFGS steps). Left: loss minus the closed-form minimum. Middle: NC1 of the features H_m. Right: distance of nrm((W_M...W_m)(W_M...W_m)^T) to the orthogonal frame I/sqrt(K). All on a log scale.", "name": "fig-11-curves"}}
deep = max(depths)
first = runs[deep].history.query("start == 0 and step <= 120")
gap = first.query("metric == 'loss'").assign(gap=lambda t: t["value"] - predictions[deep].loss)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
sns.lineplot(data=gap, x="step", y="gap", ax=axes[0]).set(yscale="log", ylabel="f - f*")
for ax, metric in zip(axes[1:], ["nc1", "nc2_of_w"]):
    sns.lineplot(data=first[first["metric"] == metric], x="step", y="value", hue="layer",
                 palette="crest", ax=ax).set(yscale="log", ylabel=metric)
fig.tight_layout()
plt.show()

# %% [markdown]
# L-BFGS reaches the closed-form value to machine precision within a few hundred evaluations, and
# NC1 and the OF distance fall together at every layer: collapse and the orthogonal frame are one
# event. {numref}`fig-11-gram` shows the matrices themselves for the deepest model.

# %% mystnb={"figure": {"caption": "Deepest model, normalised Gram matrices at every layer: classifier W_M...W_m (top) and class means of H_m (bottom), measured by L-BFGS. The theory predicts I/sqrt(K), i.e. diagonal entries 1/sqrt(K) and zeros elsewhere.", "name": "fig-11-gram"}}
shot = nc.models.snapshot(runs[deep].model)
nc.plots.layer_gram_heatmaps(shot.w_grams, shot.h_grams)
plt.show()

# %% [markdown]
# Every layer shows the same picture: equal diagonal entries $1/\sqrt K$ and vanishing
# off-diagonal entries, for the classifier and for the class means alike.
#
# ## Comparison with the closed form
#
# `nc.models.compare` reads the same matrices off the closed-form point and reports relative
# Frobenius errors: classifier Grams $W_M\cdots W_m(\cdot)^\top$ and class-mean Grams
# $\bar H_m^\top\bar H_m$ per layer, the logits $W\bar H$ and the singular values of each $W_m$.

# %%
tables = []
for m in depths:
    exact = nc.models.snapshot(nc.models.DeepLinearUFM.from_point(predictions[m].point()))
    tables.append(nc.models.compare(nc.models.snapshot(runs[m].model), exact).assign(M=m))
errors = pd.concat(tables, ignore_index=True)
errors.pivot_table(index=["quantity", "layer"], columns="M", values="matrix_error")

# %% [markdown]
# All errors sit far below the tolerance: the numerical minimizer *is* the closed-form one, layer by
# layer. The NC3 statement $W = N\lambda_H(1+x^M)\bar H^\top$ is checked directly below, together
# with NC1 and the OF distances.

# %%
for m in depths:
    p, model, final = predictions[m], runs[m].model, runs[m].final_metrics()
    W, means = model.end_to_end(), nc.metrics.class_means(model.features.T, model.labels)
    ledger.check(f"M={m}: L-BFGS loss equals the closed-form minimum f*", predicted=p.loss,
                 measured=runs[m].loss, tolerance=1e-9)
    ledger.check(f"M={m}: no start goes below f* (f* minus the lowest start)", predicted=0.0,
                 measured=p.loss - min(runs[m].final_losses), tolerance=1e-12 * p.loss, kind="upper")
    ledger.check(f"M={m}: NC1 = 0 at every layer", predicted=0.0,
                 measured=[final[f"nc1@{j}"] for j in range(1, m + 1)], tolerance=1e-12, kind="upper")
    ledger.check(f"M={m}: OF distance of W_M..W_j and of Hbar_j, every layer j", predicted=0.0,
                 measured=[final[f"{g}@{j}"] for g in ("nc2_of_w", "nc2_of") for j in range(1, m + 1)],
                 tolerance=tolerance, kind="upper")
    ledger.check(f"M={m}: NC3, W proportional to Hbar^T (paper A's NC3_W_sub_H)", predicted=0.0,
                 measured=nc.metrics.nc3_self_duality(W, means, squared=False), tolerance=tolerance,
                 kind="upper")
    ledger.check(f"M={m}: NC3 constant ||W|| / ||Hbar|| = N lam_H (1 + x^M)",
                 predicted=sum(counts) * lambda_H * (1 + p.x[0] ** m), measured=float(W.norm() / means.norm()),
                 tolerance=tolerance)
    for row in errors.query("M == @m").itertuples():
        ledger.check(f"M={m}: {row.quantity} (layer {row.layer}) equals the closed form", predicted=0.0,
                     measured=row.matrix_error, tolerance=tolerance, kind="upper")

# %% [markdown]
# ## Across the threshold
#
# The theorem has a second branch: above $\beta^*_M$ the minimizer is zero. We move the common
# $\lambda = \lambda_W = \lambda_H$ so that $\beta/\beta^*_M$ runs over `sweep_ratios` and compare
# the optimised $\|w_k\|^2$ with the closed form. For $M = 1$ the norm falls continuously to zero;
# for $M = 2$ it jumps, and $w_k^\top\bar h_k$ just below the threshold is $(M-1)/M = 1/2$.

# %%
N = sum(counts)
sweep = []
for m in (1, 2):
    for ratio in sweep_ratios:
        lam = nc.theory.lambda_for_beta(ratio * nc.theory.beta_star(m), n_per_class, N, m)
        theory = nc.theory.mse_minimizer(counts, m, lambda_W=lam, lambda_H=lam, widths=width)
        run = nc.models.solve(nc.models.UFMSpec(counts, m, width, lambda_W=lam, lambda_H=lam), starts=starts,
                              init_std=(0.5, 1.0, 2.0), seed=seed, track=False)
        sweep.append({"M": m, "ratio": ratio, "lambda": lam, "f_star": theory.loss, "f": run.loss,
                      "w_sq": float(np.diag(nc.models.snapshot(run.model).w_grams[0]).mean()),
                      "w_sq_star": theory.w_norm_sq[0]})
sweep = pd.DataFrame(sweep)
curve = pd.DataFrame([{"M": m, "ratio": r, "w_sq_star": nc.theory.mse_minimizer(
    counts, m, **dict.fromkeys(["lambda_W", "lambda_H"],
                               nc.theory.lambda_for_beta(r * nc.theory.beta_star(m), n_per_class, N, m))).w_norm_sq[0]}
    for m in (1, 2) for r in np.linspace(0.2, 1.8, 321)])

# %% [markdown]
# {numref}`fig-11-sweep` puts the numerical optima on the closed-form curves.

# %% mystnb={"figure": {"caption": "Squared classifier row norm ||w_k||^2 against beta/beta*_M. Lines: closed form; dots: best of the L-BFGS starts. M = 1 shrinks continuously to zero at the threshold; M = 2 jumps.", "name": "fig-11-sweep"}}
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
for row in sweep.itertuples():
    ledger.check(f"M={row.M}, beta/beta* = {row.ratio:g}: L-BFGS loss equals f*", predicted=row.f_star,
                 measured=row.f, tolerance=1e-9)
    ledger.check(f"M={row.M}, beta/beta* = {row.ratio:g}: ||w_k||^2 equals the closed form",
                 predicted=row.w_sq_star, measured=row.w_sq, tolerance=tolerance * max(row.w_sq_star, 1.0),
                 kind="abs")

# %% [markdown]
# ## Conclusion
#
# * For balanced classes without bias, numerical optimisation from random starts lands exactly on
#   the closed-form global minimizer: NC1, an orthogonal frame at every layer, NC3 and balanced
#   singular values, with the loss equal to $f^*$ to $10^{-9}$.
# * Above $\beta^*_M$ the minimizer is zero; for $M \ge 2$ the norm jumps there rather than
#   shrinking continuously.
#
# ## Claims

# %%
ledger.save()
ledger.table()

# %%
ledger.assert_all()
