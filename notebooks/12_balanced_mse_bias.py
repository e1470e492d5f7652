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
# Adding an unpenalised bias to the last layer changes the geometry of the optimum. This chapter
# reproduces the second balanced theorem of {cite:t}`dang2023neural`: with balanced classes, mean
# squared error and a free last-layer bias, every global minimizer of the deep linear
# unconstrained-feature model has collapsed classes (NC1), centred class means and classifier
# rows forming a **simplex equiangular tight frame** (ETF) at every layer, self-duality (NC3), a
# bias equal to the class proportions $1/K$, and a loss $(K-1)/K$ times the bias-free one. We check
# every statement against float64 L-BFGS from random starts.

# %% [markdown]
# ```{admonition} Theorem (paper A, balanced MSE with bias; Thm 3.2 (?))
# :class: important
# As in the bias-free theorem, but with $f = \frac{1}{2N}\|W_M\cdots W_1 H_1 + b\mathbf 1^\top - Y\|_F^2 +
# \sum_m\frac{\lambda_{W_m}}{2}\|W_m\|_F^2 + \frac{\lambda_H}{2}\|H_1\|_F^2$ (the bias $b$ is not
# penalised) and widths $d_m \ge K-1$. With $\beta$, $\beta^*_M$ and $x$ as before and
# $\beta < \beta^*_M$, every global minimizer has
# * $b^* = \frac1K\mathbf 1_K$ and a zero global feature mean, $h_{m,G} = 0$ at every layer;
# * **NC1** at every layer;
# * **NC2 (simplex ETF)** $WW^\top = N\lambda_H x^M\,(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)$ and
#   $\bar H^\top\bar H = \frac{x^M}{N\lambda_H(1+x^M)^2}(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)$, so
#   $\cos(w_j, w_k) = -\frac{1}{K-1}$; the same at every layer;
# * **NC3** $W\bar H = \frac{x^M}{1+x^M}(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)$ and $W \propto \bar H^\top$;
# * $f^* = \frac{K-1}{K}\cdot\frac12\left[\frac{1}{1+x^M} + \beta x\right]$: only $K-1$ directions
#   are active, each exactly as in the bias-free problem.
# ```
#
# The bias absorbs the mean of the targets; what is left, the centred one-hot matrix, has $K-1$
# equal singular values $\sqrt n$ and one zero, which is why the frame loses one dimension.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; this notebook's float64 L-BFGS runs on the CPU
seed = 0
num_classes = 4  # K
n_per_class = 10  # n
depths = [1, 2, 3]  # M values to check
width = 6  # d_m for every layer, at least K - 1
lambda_W = 0.01  # weight decay, every layer
lambda_H = 0.01  # feature decay
starts = 2  # random starts per problem (best kept); odd starts use continuation in lambda
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
width = nc.profiles.check_int("width", width, low=num_classes - 1)
lambda_W = nc.profiles.check_float("lambda_W", lambda_W, low=0.0, low_open=True)
lambda_H = nc.profiles.check_float("lambda_H", lambda_H, low=0.0, low_open=True)
starts = nc.profiles.check_int("starts", starts, low=1)
tolerance = nc.profiles.check_float("tolerance", tolerance, low=0.0, low_open=True)
ledger = nc.claims.Ledger("12_balanced_mse_bias", profile, paper="A")
counts, K = [n_per_class] * num_classes, num_classes
sns.set_theme(style="whitegrid")

# %% [markdown]
# ## The prediction
#
# `nc.theory.mse_minimizer(..., bias=True)` works with the singular directions of the centred
# targets. The table lists, per depth, the optimal loss with and without the bias; their ratio is
# $(K-1)/K$.

# %%
predictions = {m: nc.theory.mse_minimizer(counts, m, lambda_W=lambda_W, lambda_H=lambda_H, bias=True, widths=width)
               for m in depths}
bias_free = {m: nc.theory.mse_minimizer(counts, m, lambda_W=lambda_W, lambda_H=lambda_H, widths=width) for m in depths}
if not all(p.direction_active.any() for p in predictions.values()):
    raise ValueError("`lambda_W`/`lambda_H` put some depth above beta*_M (zero minimizer); lower them")
pd.DataFrame([{"M": m, "beta": p.beta[0], "x": p.x[0], "f* (bias)": p.loss,
               "f* (no bias)": bias_free[m].loss, "ratio": p.loss / bias_free[m].loss,
               "active directions": int(p.direction_active.sum())} for m, p in predictions.items()])

# %% [markdown]
# ## Optimising from random starts
#
# Float64 L-BFGS from `starts` random initialisations per depth, bias included, best kept.

# %%
runs = {m: nc.models.solve(nc.models.UFMSpec(counts, m, width, lambda_W=lambda_W, lambda_H=lambda_H, bias=True),
                           starts=starts, init_std=0.5, seed=seed, reference=predictions[m]) for m in depths}
pd.DataFrame([{"M": m, "best loss": r.loss, "closed form": predictions[m].loss,
               "bias": np.round(r.model.bias.numpy(), 10)} for m, r in runs.items()])

# %% [markdown]
# {numref}`fig-12-gram` shows, for the deepest model, the normalised Gram matrices of the
# classifier and of the centred class means at every layer.

# %% mystnb={"figure": {"caption": "Deepest model, normalised Gram matrices at every layer: classifier W_M...W_m (top) and class means of H_m (bottom; their global mean is zero at the optimum). The simplex ETF has diagonal (K-1)/(K sqrt(K-1)) and off-diagonal -1/(K sqrt(K-1)).", "name": "fig-12-gram"}}
deep = max(depths)
shot = nc.models.snapshot(runs[deep].model)
nc.plots.layer_gram_heatmaps(shot.w_grams, shot.h_grams, fmt=".3f")
plt.show()

# %% [markdown]
# Unlike the bias-free case, the off-diagonal entries are now negative and all equal: the classes
# push each other apart as far as $K$ vectors with zero sum can. The figure below lays the
# spectra side by side: $K-1$ equal eigenvalues and a zero, exactly as predicted.

# %% mystnb={"figure": {"caption": "Eigenvalues of W W^T for each depth: L-BFGS (blue) against the closed form (black). K-1 equal eigenvalues and one zero: the simplex ETF.", "name": "fig-12-spectra"}}
spectra = pd.DataFrame([{"M": m, "source": source, "eigenvalue": value}
                        for m in depths
                        for source, gram in [("L-BFGS", nc.models.snapshot(runs[m].model).w_grams[0]),
                                             ("closed form", predictions[m].w_gram)]
                        for value in np.linalg.eigvalsh(gram)])
fig, ax = plt.subplots(figsize=(6, 3.2))
sns.stripplot(data=spectra, x="M", y="eigenvalue", hue="source", dodge=True, ax=ax,
              palette=["tab:blue", "k"], marker="o", size=7, jitter=False)
plt.show()

# %% [markdown]
# Blue and black dots coincide. Increasing depth raises the common eigenvalue $N\lambda_H x^M$; the
# zero eigenvalue belongs to the all-ones direction that the bias takes over.
#
# ## Comparison with the closed form
#
# Relative Frobenius errors of every predicted matrix, per depth and layer (`nc.models.compare`),
# including the bias.

# %%
errors = pd.concat([nc.models.compare(nc.models.snapshot(runs[m].model),
                                   nc.models.snapshot(nc.models.DeepLinearUFM.from_point(predictions[m].point())))
                    .assign(M=m) for m in depths], ignore_index=True)
errors.pivot_table(index=["quantity", "layer"], columns="M", values="matrix_error")

# %% [markdown]
# Every error is at the level of the optimiser's precision. Now the individual statements.

# %%
for m in depths:
    p, model, final = predictions[m], runs[m].model, runs[m].final_metrics()
    W, means = model.end_to_end(), nc.metrics.class_means(model.features.T, model.labels)
    cosines = nc.geometry.normalized(W @ W.T).numpy() / np.diag(nc.geometry.normalized(W @ W.T).numpy())[0]
    ledger.check(f"M={m}: L-BFGS loss equals f*", predicted=p.loss, measured=runs[m].loss, tolerance=1e-9)
    ledger.check(f"M={m}: f* with bias = (K-1)/K f* without", predicted=(K - 1) / K,
                 measured=p.loss / bias_free[m].loss, tolerance=1e-12)
    ledger.check(f"M={m}: no start goes below f* (f* minus the lowest start)", predicted=0.0,
                 measured=p.loss - min(runs[m].final_losses), tolerance=1e-12 * p.loss, kind="upper")
    ledger.check(f"M={m}: bias b* = 1/K", predicted=np.full(K, 1 / K), measured=model.bias.numpy(),
                 tolerance=tolerance, kind="abs")
    ledger.check(f"M={m}: global feature mean h_G = 0 (relative to the class means)", predicted=0.0,
                 measured=float(model.features.mean(1).norm() / means.norm()), tolerance=tolerance, kind="upper")
    ledger.check(f"M={m}: NC1 = 0 at every layer", predicted=0.0,
                 measured=[final[f"nc1@{j}"] for j in range(1, m + 1)], tolerance=1e-12, kind="upper")
    ledger.check(f"M={m}: ETF distance of W_M..W_j, of centred Hbar_j (every j) and of W Hbar", predicted=0.0,
                 measured=[final[f"{g}@{j}"] for g in ("nc2_etf_w", "nc2_etf") for j in range(1, m + 1)] + [final["nc3_etf@1"]],
                 tolerance=tolerance, kind="upper")
    ledger.check(f"M={m}: cos(w_j, w_k) = -1/(K-1)", predicted=-1 / (K - 1),
                 measured=cosines[~np.eye(K, dtype=bool)], tolerance=tolerance, kind="abs")
    ledger.check(f"M={m}: NC3, W proportional to Hbar^T", predicted=0.0,
                 measured=nc.metrics.nc3_self_duality(W, means, squared=False), tolerance=tolerance, kind="upper")
    for row in errors.query("M == @m").itertuples():
        ledger.check(f"M={m}: {row.quantity} (layer {row.layer}) equals the closed form", predicted=0.0,
                     measured=row.matrix_error, tolerance=tolerance, kind="upper")

# %% [markdown]
# ## Width $K-1$ is enough
#
# With a bias only $K-1$ directions are needed, so the theorem holds for widths $d_m = K-1$ too.
# We re-solve the middle depth with every width equal to $K-1$.

# %%
m = depths[len(depths) // 2]
narrow = nc.models.solve(nc.models.UFMSpec(counts, m, K - 1, lambda_W=lambda_W, lambda_H=lambda_H, bias=True),
                         starts=max(starts, 2), init_std=0.5, seed=seed, track=False)
narrow_prediction = nc.theory.mse_minimizer(counts, m, lambda_W=lambda_W, lambda_H=lambda_H, bias=True, widths=K - 1)
ledger.check(f"M={m}, widths K-1: L-BFGS loss equals the same f*", predicted=predictions[m].loss,
             measured=narrow.loss, tolerance=1e-9)
ledger.check(f"M={m}, widths K-1: W W^T is the same ETF Gram", predicted=0.0,
             measured=nc.models.compare(nc.models.snapshot(narrow.model),
                                     nc.models.snapshot(nc.models.DeepLinearUFM.from_point(narrow_prediction.point())))
             .query("quantity == 'W W^T'")["matrix_error"].max(), tolerance=tolerance, kind="upper")
print(f"loss with widths K-1: {narrow.loss:.12g}; closed form {predictions[m].loss:.12g}")

# %% [markdown]
# ## Conclusion
#
# * With an unpenalised bias the optimum is a simplex ETF at every layer, with $b^* = \mathbf 1/K$,
#   zero global feature mean, NC1 and NC3; the loss is $(K-1)/K$ of the bias-free loss.
# * Widths $K-1$ suffice, and the numerical optimum matches the closed form to the optimiser's
#   precision.
#
# ## Claims

# %%
ledger.save()
ledger.table()

# %%
ledger.assert_all()
