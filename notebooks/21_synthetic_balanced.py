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
# # Synthetic experiments: balanced classes
#
# Paper A {cite}`dang2023neural` supports its theorems for balanced data with a direct experiment:
# gradient descent on the deep linear unconstrained-feature model, with the NC metrics logged at
# every iteration. We rerun the authors' recipe for several depths $M$, with and without a
# last-layer bias, for the mean squared error and for cross-entropy, and we log NC1, NC2 and NC3
# at **every layer**. The claim reproduced: gradient descent reaches the closed-form global minimum
# (the loss to relative $10^{-8}$ in the full float64 runs), where the features have collapsed to
# their class means (NC1), the class means and the classifier form an orthogonal frame without a
# bias and a simplex ETF with one (NC2), and the classifier is aligned with the class means (NC3).
# For cross-entropy we also show which geometry gradient descent reaches when $M \ge 2$: not always
# the simplex ETF, but the lower-loss, lower-rank *orthoplex* (our finding, not the paper's).

# %% [markdown]
# ## Overview
#
# The model: free features $H_1 \in \mathbb{R}^{d \times N}$ pass through $M$ linear layers,
# $W = W_M \cdots W_1$, and the objective is
#
# $$
# f = \frac{1}{2N}\|W_M \cdots W_1 H_1 + b\mathbf{1}^\top - Y\|_F^2 +
#     \sum_{m=1}^{M} \frac{\lambda_W}{2}\|W_m\|_F^2 + \frac{\lambda_H}{2}\|H_1\|_F^2 ,
# $$
#
# with $b = 0$ in the bias-free model and the mean cross-entropy in place of the first term for CE.
# The authors' recipe (the spec's Section 4): $K = 4$ classes of $n = 100$ samples, width
# $d = 64$, every entry initialised $\mathcal{N}(0, 0.1^2)$, $\lambda_W = \lambda_H = 5\cdot10^{-4}$,
# full-batch SGD with learning rate 0.1 and momentum 0.9 for 30,000 iterations. The full profile
# runs exactly that (in float64; width 2048 on a GPU). The smoke profile keeps the model and the
# minimizer but takes a 10x larger step for 2,000 iterations at width 32 and depths 1 and 3, so it
# finishes in a minute on one CPU core; the minimizer does not depend on the step or the width
# (as long as $d \ge K$), so every prediction below is unchanged. One deliberate change on a GPU:
# at width 2048 the authors' $\mathcal{N}(0, 0.1^2)$ init multiplies each signal by about
# $0.1\sqrt{2048} \approx 4.5$ per layer, and with $M = 3$ the loss overflows within four SGD steps
# (we checked; the authors ran width 2048 only with $M = 1$). The GPU run therefore uses the standard
# deviation $0.1\sqrt{64/2048}$, which keeps the per-layer gain of their width-64 runs.
#
# Each run's metrics are written to a CSV file under `results/<profile>/21_synthetic_balanced/`
# and read back from there; a run whose file exists is not repeated.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full" (the authors' sizes)
device = "auto"  # "auto", "cpu" or "cuda"
seed = 0  # initialisation seed of every run (the authors use 2); CE start i uses seed + i
depths = [1, 3]  # M, number of linear layers
num_classes = 4  # K
n_per_class = 100  # n
width = 32  # hidden width d on CPU
cuda_width = 32  # hidden width d on CUDA
init_std = 0.1  # every entry starts N(0, init_std^2) on CPU (the authors' 0.1)
cuda_init_std = 0.1  # the same on CUDA
weight_decay = 0.0005  # lambda_W and lambda_H
steps = 2000  # full-batch SGD iterations
learning_rate = 1.0  # SGD step (momentum 0.9)
log_every = 20  # metrics every this many iterations
ce_starts = 2  # random starts per depth for cross-entropy
dtype = "float64"  # "float64" or the authors' "float32"
loss_tolerance = 1e-8  # relative gap of the final MSE loss to the closed form
ce_tolerance = 1e-8  # relative gap of the final CE loss to the closed form
metric_tolerance = 1e-4  # bound on every final NC1 / NC2 / NC3 metric and on the bias error

# %%
import matplotlib.pyplot as plt

import ncbook as nc

torch_device = nc.profiles.setup(profile, device, seed)
for name, value in [("loss_tolerance", loss_tolerance), ("ce_tolerance", ce_tolerance),
                    ("metric_tolerance", metric_tolerance)]:
    nc.profiles.check_float(name, value, low=0.0, low_open=True)
ce_starts = nc.profiles.check_int("ce_starts", ce_starts, low=1, high=16)
shared = dict(n_per_class=[n_per_class] * nc.profiles.check_int("num_classes", num_classes, low=2),
              widths=cuda_width if torch_device.type == "cuda" else width,
              init_std=cuda_init_std if torch_device.type == "cuda" else init_std, lambda_W=weight_decay,
              lambda_H=weight_decay, steps=steps, lr=learning_rate, log_every=log_every, dtype=dtype)
mse_runs = nc.experiments.synthetic.grid(depths=depths, biases=[False, True], seeds=[seed], **shared)
ce_runs = nc.experiments.synthetic.grid(depths=depths, losses=["ce"], seeds=range(seed, seed + ce_starts), **shared)
ledger = nc.claims.Ledger("21_synthetic_balanced", profile, paper="A")

# %% [markdown]
# ## Runs
#
# `nc.experiments.synthetic.run_all` trains (or loads) every configuration; `nc.experiments.synthetic.predictions`
# evaluates the same metrics at the closed-form candidates of `nc.theory`: the global minimizer
# for MSE, and the simplex ETF and the orthoplex for CE. The first table lists the predictions:
# the optimal loss $f^*$ and the squared norm $\|w_k\|^2$ of each classifier row.

# %%
table = nc.experiments.synthetic.run_all(mse_runs + ce_runs, profile, "21_synthetic_balanced", torch_device)
predicted = nc.experiments.synthetic.predictions(mse_runs + ce_runs)
end = nc.experiments.synthetic.attach(nc.experiments.synthetic.final(table), predicted)
predicted.query("metric in ['loss', 'w_norm_sq'] and k <= 0").pivot_table(
    index=["criterion", "bias", "depth"], columns=["candidate", "metric"], values="value")

# %% [markdown]
# ## Mean squared error: the loss reaches its closed form
#
# For balanced classes every direction solves the same scalar problem: with
# $\beta = MK(N\lambda_W^M\lambda_H)^{1/M}$, $x$ the largest root of
# $\beta = Mx^{M-1}/(1+x^M)^2$, the minimum is $f^* = \tfrac12[1/(1+x^M) + \beta x]$ without a bias
# and $\tfrac{K-1}{K}$ of that with one (the bias absorbs the all-ones direction). The figure shows
# the relative gap $(f - f^*)/f^*$ of every run along the iterations.

# %% mystnb={"figure": {"caption": "Relative gap (f - f*)/f* to the closed-form minimum along the iterations, one panel per depth M, one curve per setting (MSE without bias, MSE with bias, cross-entropy). Look for straight lines on the log scale: exponential convergence, not a stall.", "name": "fig-21-loss-gap"}}
gaps = nc.experiments.synthetic.attach(table.query("metric == 'loss'"), predicted,
                           nc.experiments.synthetic.closest_candidate(table, predicted).set_index("run")["candidate"])
gaps = gaps.assign(value=(gaps["value"] - gaps["predicted"]).abs() / gaps["predicted"],
                   setting=gaps["criterion"] + gaps["bias"].map({True: " + bias", False: ""})
                   + " (seed " + gaps["seed"].astype(str) + ")")
grid = nc.plots.facet_lines(gaps, col="depth", hue="setting", palette="tab10", height=2.6)
grid.set_titles(col_template="M = {col_name}").set_ylabels("relative gap to $f^*$")
plt.show()

# %% [markdown]
# Every curve falls exponentially, by many orders of magnitude: the runs do not stall near the
# minimum, they converge to the closed-form value (the final gaps are in the claims at the end).
# For cross-entropy the gap is measured to the closed form of the geometry the run reached; see
# the last section.
#
# ## Mean squared error without a bias: orthogonal frame at every layer
#
# The paper's balanced MSE theorem (bias-free) predicts, for every layer $m$: NC1 ($H_m$ equals its class means),
# NC2 ($\bar H_m^\top \bar H_m \propto I_K$ and $W_{\ge m} W_{\ge m}^\top \propto I_K$ with
# $W_{\ge m} = W_M \cdots W_m$, the orthogonal frame, OF) and NC3 ($W_{\ge m} \propto \bar H_m^\top$).
# The NC2 and NC3 metrics are the normalised Frobenius distances of the authors' code,
# $\|A/\|A\|_F - B/\|B\|_F\|_F$. One row per metric, one column per depth, one colour per layer.
# The last row measures the distance of $WW^\top$ to the simplex ETF instead: the theory predicts
# it settles at $\sqrt{2 - 2\sqrt{(K-1)/K}} \approx 0.518$ (dashed), because without a bias the
# frame is orthogonal, not an ETF.

# %% mystnb={"figure": {"caption": "MSE without bias: NC1 and the distances of the classifier and class-mean Gram matrices to the orthogonal frame, per layer (colour), per depth (column). Dashed: the predicted final value (zero for the OF metrics, the OF-to-ETF distance for the ETF metric).", "name": "fig-21-of"}}
labels = {"nc1": "NC1", "nc2_of_w": "NC2 W vs OF", "nc2_of": "NC2 H vs OF", "nc3_sub": "NC3 W vs H",
          "nc2_etf_w": "NC2 W vs ETF", "nc2_etf": "NC2 H vs ETF"}
free = table.query("criterion == 'mse' and not bias and metric in ['nc1', 'nc2_of_w', 'nc2_of', 'nc3_sub', 'nc2_etf_w']")
grid = nc.plots.facet_lines(free, row="metric", col="depth", hue="layer",
                            row_order=["nc1", "nc2_of_w", "nc2_of", "nc3_sub", "nc2_etf_w"], floor=1e-32,
                            reference=predicted.query("criterion == 'mse' and not bias"), labels=labels)
grid.set_titles(row_template="{row_name}", col_template="M = {col_name}").set_ylabels("")
plt.show()

# %% [markdown]
# NC1 and the OF distances of all layers fall together, to round-off level: every layer collapses,
# not only the last one (the *deep* neural collapse of the paper). The ETF distance of $WW^\top$
# stops at the dashed prediction.
#
# ## Mean squared error with a bias: simplex ETF at every layer
#
# With an unregularised last-layer bias, the paper's second balanced theorem predicts $b^* = \frac1K\mathbf 1$, a zero
# global feature mean, and a simplex ETF instead of the OF: $W W^\top \propto I_K - \frac1K
# \mathbf 1 \mathbf 1^\top$, the same for the centred class means. The figure has the same layout,
# with the ETF metrics in the NC2 rows and the OF distance (again predicted at 0.518) in the last.

# %% mystnb={"figure": {"caption": "MSE with an unpenalised bias: the same metrics against the simplex ETF. Dashed: predicted final values.", "name": "fig-21-etf"}}
with_bias = table.query("criterion == 'mse' and bias and metric in ['nc1', 'nc2_etf_w', 'nc2_etf', 'nc3_sub', 'nc2_of_w']")
grid = nc.plots.facet_lines(with_bias, row="metric", col="depth", hue="layer",
                            row_order=["nc1", "nc2_etf_w", "nc2_etf", "nc3_sub", "nc2_of_w"], floor=1e-32,
                            reference=predicted.query("criterion == 'mse' and bias"), labels=labels)
grid.set_titles(row_template="{row_name}", col_template="M = {col_name}").set_ylabels("")
plt.show()

# %% [markdown]
# The ETF metrics converge like the OF metrics did without a bias. The final values of every
# MSE run, the largest over the layers, next to the closed-form loss:

# %%
mse_end = end.query("criterion == 'mse'")
worst = mse_end.query("metric in ['nc1', 'nc3_sub', 'nc2_pred_w', 'nc2_pred', 'nc3_pred']").pivot_table(
    index=["bias", "depth"], columns="metric", values="value", aggfunc="max")
worst.join(mse_end.query("metric == 'loss'").set_index(["bias", "depth"])[["value", "predicted"]])

# %% [markdown]
# Here `w_pred`, `h_pred` and `wh_pred` are the distances of $WW^\top$, $\bar H^\top\bar H$ and
# $W\bar H$ to the predicted Gram matrices (the OF without a bias, the ETF with one), and
# `value` / `predicted` are the final loss and $f^*$. The learned bias:

# %%
bias_end = mse_end.query("metric == 'bias'")
bias_end.pivot_table(index="depth", columns="k", values=["value", "predicted"])

# %% [markdown]
# ## Cross-entropy: which geometry does gradient descent reach?
#
# For cross-entropy the paper's abstract states that the simplex ETF is optimal. Our analysis
# (Part I, cross-entropy) finds that this holds for $M = 1$, while for $M \ge 2$ a *lower-rank*
# configuration, the orthoplex (class means $\pm e_j$ in $K/2$ dimensions), can have a strictly
# lower objective: the ETF is then only a local minimum. Both candidates' losses come from
# `nc.theory.ce_minimizer` ($F_\text{ETF}$ and $F_\text{orth}$ in the spec's notation). The table
# puts the final loss of each run next to them, with the candidate it matches and the relative gap.

# %%
ce_outcome = nc.experiments.synthetic.closest_candidate(table.query("criterion == 'ce'"), predicted)
ce_outcome[["depth", "seed", "loss", "etf", "orthoplex", "candidate", "gap"]]

# %% [markdown]
# The singular values of $W = W_M\cdots W_1$, divided by the largest, tell the two geometries
# apart: the ETF has $K-1$ equal singular values and one zero; the orthoplex has $K/2$ equal ones.

# %% mystnb={"figure": {"caption": "Cross-entropy: singular values of W = W_M...W_1 divided by the largest, per seed (row) and depth (column). K-1 equal values and one zero mark the ETF; K/2 equal values the orthoplex.", "name": "fig-21-ce-spectrum"}}
spectrum = table.query("criterion == 'ce' and metric == 'sv'").copy()
spectrum["value"] /= spectrum.groupby(["run", "step"])["value"].transform("max")
spectrum["k"] = spectrum["k"] + 1
grid = nc.plots.facet_lines(spectrum, col="depth", row="seed", hue="k", palette="tab10", height=2.4)
grid.set_titles(row_template="seed {row_name}", col_template="M = {col_name}").set_ylabels("$s_k / s_1$")
plt.show()

# %% [markdown]
# With one layer every start ends at the simplex ETF ($K-1 = 3$ equal singular values), as the
# theory says it must: for $M = 1$ the problem is convex in the logits. With more layers the
# outcome depends on the start: a run can settle at the ETF, which is then only a local minimum,
# or lose a second singular value and end at the orthoplex, whose objective is lower. The count
# over all starts of this run:

# %%
deep = ce_outcome.query("depth >= 2")
print(f"{(deep['candidate'] == 'orthoplex').sum()} of {len(deep)} cross-entropy runs with M >= 2 "
      f"reached the orthoplex, {(deep['candidate'] == 'etf').sum()} the simplex ETF")

# %% [markdown]
# A start that reaches the orthoplex has found a lower objective than every start that stops at
# the ETF: the deep CE problem has a low-rank bias that the ETF picture misses, and an experiment
# that reports only ETF metrics would see such runs "fail to collapse" when they have in fact
# found a better minimum.
#
# ## Claims

# %%
for row in mse_end.query("metric == 'loss'").itertuples():
    ledger.check(f"MSE, M={row.depth}, bias={row.bias}: final loss equals closed-form f*",
                 predicted=row.predicted, measured=row.value, tolerance=loss_tolerance)
for (bias, depth), value in worst.max(axis=1).items():
    ledger.check(f"MSE, M={depth}, bias={bias}: NC1 and distances to the predicted frame, every layer",
                 predicted=0.0, measured=value, tolerance=metric_tolerance, kind="upper")

# %% [markdown]
# The bias, the distance to the other frame, and the cross-entropy runs:

# %%
for depth, rows in bias_end.groupby("depth"):
    ledger.check(f"MSE, M={depth}: bias b* = n_k/N", predicted=rows["predicted"], measured=rows["value"],
                 tolerance=metric_tolerance, kind="abs")
other = mse_end.query("(not bias and metric == 'nc2_etf_w') or (bias and metric == 'nc2_of_w')")
ledger.check("MSE: WW^T stays at the predicted distance 0.5176 from the other frame (every layer)",
             predicted=other["predicted"], measured=other["value"], tolerance=metric_tolerance, kind="abs")
for row in ce_outcome.itertuples():
    ledger.check(f"CE, M={row.depth}, seed {row.seed}: final loss equals the closed form of the {row.candidate}",
                 predicted=getattr(row, row.candidate), measured=row.loss, tolerance=ce_tolerance)

# %% [markdown]
# For one layer the ETF is the global minimizer and gradient descent must reach it. For deeper
# models, every start that ended at the orthoplex is a point of lower objective than the ETF,
# found by gradient descent itself: the ETF is not the global minimizer there.

# %%
for row in ce_outcome.query("depth == 1").itertuples():
    ledger.check(f"CE, M=1, seed {row.seed}: gradient descent reaches the simplex ETF",
                 predicted=1.0, measured=float(row.candidate == "etf"), tolerance=0.0, kind="abs")
for row in ce_outcome.query("depth >= 2 and candidate == 'orthoplex'").itertuples():
    ledger.check(f"CE, M={row.depth}, seed {row.seed}: gradient descent ends below the ETF's objective",
                 predicted=row.orthoplex, measured=row.loss, tolerance=row.etf, kind="upper", paper="ours")
ledger.save()
ledger.table()

# %%
ledger.assert_all()
