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
# With imbalanced classes the optimum is no longer symmetric. This chapter reproduces the
# imbalanced theorem of {cite:t}`dang2023neural` for the plain unconstrained-feature model
# ($M = 1$): class means and classifier rows are still orthogonal, but their lengths depend on the
# class sizes (a *general orthogonal frame*, GOF), the classifier row of class $k$ is proportional
# to its class mean, and a class with $n_k \le N^2\lambda_W\lambda_H$ collapses to zero
# (*minority collapse*), continuously as $\lambda$ grows. We check every statement against float64
# L-BFGS, and the check numbers of our spec.

# %% [markdown]
# ```{admonition} Theorem (paper A, imbalanced MSE, $M = 1$; Thm 4.1 (?))
# :class: important
# Let $n_1 \ge \dots \ge n_K$, $N = \sum_k n_k$, $d \ge K$, and
# $f = \frac{1}{2N}\|WH - Y\|_F^2 + \frac{\lambda_W}{2}\|W\|_F^2 + \frac{\lambda_H}{2}\|H\|_F^2$.
# Every global minimizer has
# * **NC1** $h_i = \bar h_{y_i}$;
# * **NC2 (GOF)** $WW^\top = \mathrm{diag}(s_k^2)$ and
#   $\bar H^\top\bar H = \mathrm{diag}\big(s_k^2/(s_k^2 + N\lambda_H)^2\big)$ with
#   $s_k^2 = \big(\sqrt{n_k\lambda_H/\lambda_W} - N\lambda_H\big)_+$;
# * **NC3** $w_k = (s_k^2 + N\lambda_H)\,\bar h_k$ and $w_k^\top\bar h_k = 1 - N\sqrt{\lambda_W\lambda_H/n_k}$
#   for the surviving classes;
# * **minority collapse** $w_k = \bar h_k = 0$ iff $n_k \le N^2\lambda_W\lambda_H$; the norm reaches
#   zero continuously;
# * $f^* = \sum_{k\ \rm active}\big[\sqrt{n_k\lambda_W\lambda_H} - \tfrac N2\lambda_W\lambda_H\big] +
#   \sum_{k\ \rm collapsed}\frac{n_k}{2N}$.
# ```

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; this notebook's float64 L-BFGS runs on the CPU
seed = 0
n_per_class = [40, 20, 10, 5]  # class sizes, largest first
width = 6  # d, at least K
lambda_W = 0.03  # weight decay
lambda_H = 0.03  # feature decay
starts = 2  # random starts per problem (best kept)
sweep_points = 6  # common lambdas at which the collapse curve is re-solved
tolerance = 1e-6  # relative error allowed on matrices (L-BFGS stops at gradient 1e-12)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import ncbook as nc

torch_device = nc.profiles.setup(profile, device, seed)
n_per_class = [nc.profiles.check_int(f"n_per_class[{k}]", n, low=1) for k, n in enumerate(n_per_class)]
width = nc.profiles.check_int("width", width, low=len(n_per_class))
lambda_W = nc.profiles.check_float("lambda_W", lambda_W, low=0.0, low_open=True)
lambda_H = nc.profiles.check_float("lambda_H", lambda_H, low=0.0, low_open=True)
starts = nc.profiles.check_int("starts", starts, low=1)
sweep_points = nc.profiles.check_int("sweep_points", sweep_points, low=2)
tolerance = nc.profiles.check_float("tolerance", tolerance, low=0.0, low_open=True)
ledger = nc.claims.Ledger("14_imbalanced_mse_plain", profile, paper="A")
counts, K, N = n_per_class, len(n_per_class), sum(n_per_class)
sns.set_theme(style="whitegrid")

# %% [markdown]
# ## The prediction
#
# `nc.theory.mse_minimizer` with $M = 1$; next to it the formulas of the theorem written out, as
# an independent check of the library.

# %%
prediction = nc.theory.mse_minimizer(counts, 1, lambda_W=lambda_W, lambda_H=lambda_H, widths=width)
n = np.array(counts, dtype=float)
s_sq = np.maximum(np.sqrt(n * lambda_H / lambda_W) - N * lambda_H, 0)
explicit = pd.DataFrame({"n_k": counts, "beta_k": prediction.beta, "active": prediction.active,
                         "||w_k||^2": prediction.w_norm_sq, "s_k^2 (formula)": s_sq,
                         "||hbar_k||^2": prediction.h_norm_sq, "w_k.hbar_k": prediction.wh})
explicit

# %%
on = n > N**2 * lambda_W * lambda_H
formula_loss = np.sum(np.where(on, np.sqrt(n * lambda_W * lambda_H) - N * lambda_W * lambda_H / 2, n / (2 * N)))
ledger.check("||w_k||^2 = (sqrt(n_k lam_H/lam_W) - N lam_H)_+ (library vs formula)", predicted=s_sq,
             measured=prediction.w_norm_sq, tolerance=1e-12, kind="abs")
ledger.check("f* = sum_active [sqrt(n_k lam_W lam_H) - N lam_W lam_H/2] + sum_collapsed n_k/(2N)",
             predicted=formula_loss, measured=prediction.loss, tolerance=1e-12)
ledger.check("collapse set = {k : n_k <= N^2 lam_W lam_H}", predicted=(~on).astype(float),
             measured=(~prediction.active).astype(float), tolerance=0.0, kind="abs")
if counts == [40, 20, 10, 5] and lambda_W == lambda_H == 0.03:  # the check numbers of our spec
    ledger.check("spec check numbers: f* = 0.3508524014", predicted=0.3508524014,
                 measured=prediction.loss, tolerance=1e-10, kind="abs", paper="ours")
    ledger.check("spec check numbers: ||w_k||^2", predicted=[4.07455532, 2.22213595, 0.91227766, 0],
                 measured=prediction.w_norm_sq, tolerance=1e-8, kind="abs", paper="ours")

# %% [markdown]
# ## Optimising from random starts
#
# For $M = 1$ the landscape is benign (every local minimum is global), so a few starts suffice.

# %%
run = nc.models.solve(nc.models.UFMSpec(counts, 1, width, lambda_W=lambda_W, lambda_H=lambda_H),
                      starts=starts, init_std=0.5, seed=seed, reference=prediction)
shot, exact = nc.models.snapshot(run.model), nc.models.snapshot(nc.models.DeepLinearUFM.from_point(prediction.point()))
final = run.final_metrics()
pd.DataFrame({"n_k": counts, "||w_k||^2 L-BFGS": np.diag(shot.w_grams[0]), "closed form": prediction.w_norm_sq,
              "||hbar_k||^2 L-BFGS": np.diag(shot.h_grams[0]), "closed form ": prediction.h_norm_sq})

# %% [markdown]
# {numref}`fig-14-norms` shows the class-size dependence directly.

# %% mystnb={"figure": {"caption": "Squared norms per class: classifier rows ||w_k||^2 (left) and class means ||hbar_k||^2 (right), L-BFGS (bars) against the closed form (black ticks). Larger classes get longer classifier rows; the smallest class has collapsed to zero.", "name": "fig-14-norms"}}
norms = pd.DataFrame({"class (n_k)": [f"{k} ({c})" for k, c in enumerate(counts)] * 2,
                      "quantity": ["||w_k||^2"] * K + ["||hbar_k||^2"] * K,
                      "L-BFGS": np.r_[np.diag(shot.w_grams[0]), np.diag(shot.h_grams[0])],
                      "closed form": np.r_[prediction.w_norm_sq, prediction.h_norm_sq]})
grid = sns.catplot(data=norms, x="class (n_k)", y="L-BFGS", col="quantity", kind="bar", sharey=False,
                   height=3.2, aspect=1.3, color="tab:blue")
for ax, (_, part) in zip(grid.axes.flat, norms.groupby("quantity", sort=False)):
    ax.scatter(range(K), part["closed form"], marker="_", s=600, color="k", zorder=3)
plt.show()

# %% [markdown]
# The bars match the ticks. The classifier rows grow with $n_k$; the class means vary much less
# (here they even peak at the middle class), and the product $w_k^\top\bar h_k$ increases with $n_k$.
# Only for small $\lambda$ do the norms approach the power laws $\|w_k\|^2 \propto \sqrt{n_k}$ and
# $\|\bar h_k\|^2 \propto 1/\sqrt{n_k}$.
#
# ## The statements, one by one
#
# We compare the full matrices (`nc.models.compare`), the GOF distances of the authors' metric, the
# NC3 proportionality with its class-dependent constant, and the OF distance, which does **not**
# vanish under imbalance.

# %%
errors = nc.models.compare(shot, exact)
W, means = run.model.end_to_end(), nc.metrics.class_means(run.model.features.T, run.model.labels)
ratio = (W.norm(dim=1) / means.norm(dim=1).clamp_min(1e-300)).numpy()
ledger.check("L-BFGS loss equals f*", predicted=prediction.loss, measured=run.loss, tolerance=1e-9)
ledger.check("no start goes below f* (f* minus the lowest start)", predicted=0.0,
             measured=prediction.loss - min(run.final_losses), tolerance=1e-12 * prediction.loss, kind="upper")
ledger.check("NC1 = 0", predicted=0.0, measured=final["nc1@1"], tolerance=1e-12, kind="upper")
for row in errors.itertuples():
    ledger.check(f"{row.quantity} (layer {row.layer}) equals the closed form (GOF)", predicted=0.0,
                 measured=row.matrix_error, tolerance=tolerance, kind="upper")
ledger.check("GOF distances of W W^T, Hbar^T Hbar and W Hbar (authors' metric)", predicted=0.0,
             measured=[final["nc2_pred_w@1"], final["nc2_pred@1"], final["nc3_pred@1"]], tolerance=tolerance, kind="upper")
ledger.check("NC3: ||w_k|| / ||hbar_k|| = s_k^2 + N lam_H (active classes)", predicted=(s_sq + N * lambda_H)[on],
             measured=ratio[on], tolerance=tolerance)
ledger.check("NC3: w_k.hbar_k = 1 - N sqrt(lam_W lam_H / n_k) (active classes)",
             predicted=1 - N * np.sqrt(lambda_W * lambda_H / n[on]), measured=np.diag(shot.logits)[on],
             tolerance=tolerance)
ledger.check("minority collapse: ||w_k||^2 and ||hbar_k||^2 vanish for collapsed classes", predicted=0.0,
             measured=np.r_[np.diag(shot.w_grams[0])[~on], np.diag(shot.h_grams[0])[~on]],
             tolerance=1e-12, kind="upper")
ledger.check("the OF distance stays away from 0 (it equals the GOF-OF distance)",
             predicted=nc.geometry.gram_distance(prediction.w_gram, nc.geometry.orthogonal_frame(K)),
             measured=final["nc2_of_w@1"], tolerance=tolerance)

# %% [markdown]
# ## Continuous minority collapse
#
# Collapse sets in class by class as the common $\lambda = \lambda_W = \lambda_H$ grows: class $k$
# reaches zero at $\lambda_k = \sqrt{n_k}/N$. For $M = 1$ the norm goes to zero continuously. We
# re-solve at `sweep_points` values of $\lambda$ and lay the results on the closed-form curves.

# %%
thresholds = np.sqrt(n) / N
lambdas = np.geomspace(thresholds.min() / 3, thresholds.max() * 1.2, sweep_points)
sweep = pd.DataFrame([{"lambda": lam, "class": str(k), "w_sq": w, "w_sq_star": t}
                      for lam in lambdas
                      for k, (w, t) in enumerate(zip(
                          np.diag(nc.models.snapshot(nc.models.solve(
                              nc.models.UFMSpec(counts, 1, width, lambda_W=lam, lambda_H=lam), starts=1,
                              init_std=0.5, seed=seed, track=False).model).w_grams[0]),
                          nc.theory.mse_minimizer(counts, 1, lambda_W=lam, lambda_H=lam, widths=width).w_norm_sq))])
curve = pd.DataFrame([{"lambda": lam, "class": str(k), "w_sq_star": w}
                      for lam in np.geomspace(lambdas[0], lambdas[-1], 300)
                      for k, w in enumerate(nc.theory.mse_minimizer(counts, 1, lambda_W=lam, lambda_H=lam).w_norm_sq)])

# %% mystnb={"figure": {"caption": "||w_k||^2 per class against the common lambda (log scale). Lines: closed form; dots: L-BFGS. Each class shrinks continuously to zero at lambda = sqrt(n_k)/N (dotted), smallest class first.", "name": "fig-14-collapse"}}
fig, ax = plt.subplots(figsize=(6.5, 3.6))
sns.lineplot(data=curve, x="lambda", y="w_sq_star", hue="class", palette="viridis", ax=ax)
sns.scatterplot(data=sweep, x="lambda", y="w_sq", hue="class", palette="viridis", s=50, ax=ax, legend=False)
for t in thresholds:
    ax.axvline(t, color="gray", ls=":", lw=0.8)
ax.set(xscale="log", xlabel=r"$\lambda_W = \lambda_H$", ylabel=r"$\|w_k\|^2$")
plt.show()

# %% [markdown]
# Each curve meets zero with a finite slope: the continuous collapse of the one-layer model. The
# deep model of the next chapter behaves differently.

# %%
ledger.check("sweep: ||w_k||^2 of L-BFGS equals the closed form at every lambda", predicted=sweep["w_sq_star"],
             measured=sweep["w_sq"], tolerance=tolerance * sweep["w_sq_star"].max(), kind="abs")

# %% [markdown]
# ## Conclusion
#
# * Under imbalance the one-layer optimum is a general orthogonal frame: orthogonal classifier rows
#   and class means whose lengths follow the closed form in $n_k$, with $w_k \propto \bar h_k$.
# * Classes with $n_k \le N^2\lambda_W\lambda_H$ collapse to zero, continuously in $\lambda$.
# * The OF metric of the balanced theory does not vanish here; its limit is the GOF-OF distance.
#
# ## Claims

# %%
ledger.save()
ledger.table()

# %%
ledger.assert_all()
