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
# # Synthetic experiments: imbalanced classes and minority collapse
#
# With imbalanced classes, paper A {cite}`dang2023neural` predicts that the classifier rows and the
# class means still become orthogonal, but no longer of equal length: they form a *general
# orthogonal frame* (GOF) whose lengths depend on the class sizes, and the imbalance of the norms
# grows with depth. We rerun the authors' imbalanced synthetic experiment (gradient descent on the
# deep linear unconstrained-feature model, $n = [200, 100, 50, 50]$) and check the claim
# reproduced: gradient descent reaches the closed-form minimum, the GOF metrics of every layer go to
# zero, each class's $\|w_k\|^2$ and $\|\bar h_k\|^2$ equal their closed forms, and the
# orthogonal-frame (OF) metric does *not* go to zero but settles at the predicted distance between
# the GOF and the OF. A second experiment, with larger weight decay, shows *minority collapse*: the
# smallest classes vanish, continuously for one layer and by a jump for two, where gradient descent
# finds the true global minimum that the authors' root-finding rule misses (our finding).
#
# ```{prf:theorem} Paper A, as reconstructed: imbalanced MSE
# :label: thm-22-gof
#
# With imbalanced classes, mean squared error and no bias, the global minimizers collapse at every
# layer (NC1), and the classifier rows and class means form a general orthogonal frame whose
# lengths depend on the class sizes {source}`paper: abstract`. The lengths are the closed form of the
# authors' code {source}`authors' code: compute_x, compute_s`, rewritten
# in paper A's variables. The threshold $\beta^*_M$ at which a class vanishes, and the jump of its
# norm there for $M \ge 2$, are ours {source}`ours: derived and verified here`.
# ```
#
# ```{admonition} What this chapter checks
# :class: tip
# Gradient descent on the deep linear model with imbalanced classes: every layer reaches the general
# orthogonal frame with the closed-form per-class norms, and with a larger weight decay the smallest
# classes vanish at the global minimum. What to look at: {numref}`fig-22-norms` and
# {numref}`fig-22-minority`.
# ```

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% [markdown]
# ## Overview
#
# The objective is the bias-free MSE of the balanced chapter,
# $f = \frac{1}{2N}\|W_M\cdots W_1 H_1 - Y\|_F^2 + \sum_m \frac{\lambda_W}{2}\|W_m\|_F^2 +
# \frac{\lambda_H}{2}\|H_1\|_F^2$, now with $n_k$ samples in class $k$. Its minimum splits into one
# scalar problem per class: with
# $\beta_k = MN(N\lambda_W^M\lambda_H)^{1/M}/n_k$, class $k$ keeps a non-zero classifier row iff
# $\beta_k < \beta^*_M$, and then $x_k$ is the largest root of $\beta_k = Mx^{M-1}/(1+x^M)^2$ and
#
# $$
# \|w_k\|^2 = N\lambda_H x_k^M, \qquad
# \|\bar h_k\|^2 = \frac{x_k^M}{N\lambda_H(1+x_k^M)^2}, \qquad
# w_k^\top \bar h_k = \frac{x_k^M}{1+x_k^M}, \qquad w_j \perp w_k,\ \bar h_j \perp \bar h_k .
# $$
#
# The recipe is the authors' {source}`authors' code: synthetic_experiment_imbalanced.py, README`:
# $K = 4$, $n = [200, 100, 50, 50]$, $\lambda_W = \lambda_H = 5\cdot10^{-4}$, init
# $\mathcal N(0, 0.1^2)$, full-batch SGD with learning rate 0.1 and momentum 0.9 for 30,000
# iterations, at width 2048 in their README command.
#
# * **Scale of the results shown.** The stored full profile runs this recipe on a CPU at width 64
#   (the width of the authors' balanced synthetic runs), not 2048, in float64, for $M = 1, 3, 6, 9$;
#   the minimizer does not depend on the width once it is at least $K$. The smoke profile runs
#   depths 1 and 3 at width 32 with a 10x larger step for 2,000 iterations; none of this changes the
#   minimizer.
# * **On a GPU** the full profile uses width 2048 with the initial standard deviation scaled to
#   $0.1\sqrt{64/2048}$: with the authors' 0.1 every layer multiplies the signal by about 4.5 and
#   deep runs overflow within a few steps (their README command uses $M = 1$).
#
# Per-iteration metrics go to CSV files in the chapter's results folder, which this notebook reads
# back (and reuses).

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full" (the authors' sizes)
device = "auto"  # "auto", "cpu" or "cuda"
seed = 0  # initialisation seed (the authors use 2); minority start i uses seed + i
depths = [1, 3]  # M, number of linear layers
n_per_class = [200, 100, 50, 50]  # class sizes n_k (as the authors)
width = 32  # hidden width d on CPU
cuda_width = 32  # hidden width d on CUDA
init_std = 0.1  # every entry starts N(0, init_std^2) on CPU (the authors' 0.1)
cuda_init_std = 0.1  # the same on CUDA
weight_decay = 0.0005  # lambda_W and lambda_H
steps = 2000  # full-batch SGD iterations
learning_rate = 1.0  # SGD step (momentum 0.9)
log_every = 20  # metrics every this many iterations
dtype = "float64"  # "float64" or the authors' "float32"
minority_counts = [40, 20, 10, 5]  # class sizes of the minority-collapse runs
minority_depths = [1, 2]  # depths of the minority-collapse runs
minority_decays = [0.035, 0.04]  # weight decay (lambda_W and lambda_H) of the run at each minority depth
minority_width = 64  # width of the minority runs (narrow deep inits can fall to the zero point)
minority_steps = 2000  # iterations of the minority runs (learning rate 0.1)
minority_starts = 1  # random starts per minority run
loss_tolerance = 1e-8  # relative gap of every final loss to the closed form
metric_tolerance = 1e-6  # bound on final GOF metrics and on |OF distance - predicted|
norm_tolerance = 1e-6  # relative error of the final ||w_k||^2 and ||h_k||^2
collapse_tolerance = 1e-8  # bound on ||w_k||^2 of a class predicted to vanish

# %% tags=["hide-input"]
import matplotlib.pyplot as plt

import ncbook as nc
from ncbook.experiments import synthetic

nb = nc.notebook(profile=profile, device=device, seed=seed)
nc.plots.theme()
on_cuda = nb.device.type == "cuda"

# %% tags=["hide-input"]
main_runs = synthetic.grid(depths=depths, seeds=[seed], n_per_class=n_per_class, lambda_W=weight_decay,
                           widths=cuda_width if on_cuda else width, init_std=cuda_init_std if on_cuda else init_std,
                           lambda_H=weight_decay, steps=steps, lr=learning_rate, log_every=log_every, dtype=dtype)
minority_runs = synthetic.grid(depths=minority_depths, decays=minority_decays, seeds=range(seed, seed + minority_starts),
                               n_per_class=minority_counts, widths=minority_width, steps=minority_steps,
                               log_every=log_every, dtype=dtype)
main, minority = [run.name for run in main_runs], [run.name for run in minority_runs]

# %% [markdown]
# ## Runs and predictions
#
# `synthetic.predictions` measures the metrics at the closed-form minimizer of
# `nc.theory.mse_minimizer` before any run; `synthetic.run_all` then trains (or loads) every run.
# The predicted per-class norms for the authors' counts:

# %%
predicted = synthetic.predictions(main_runs + minority_runs)
predicted.query("run in @main and candidate == 'global' and metric in ['w_norm_sq', 'h_norm_sq', 'wh']").pivot_table(
    index="depth", columns=["metric", "k"], values="value")

# %%
table = synthetic.run_all(main_runs + minority_runs, profile, nb.name, nb.device)
end = synthetic.attach(synthetic.final(table), predicted)

# %% [markdown]
# The larger class gets the longer classifier row and the shorter class mean, and the spread grows
# with depth: for large $x_k$, $\|w_k\|^2 \propto n_k^{M/(M+1)}$.
#
# ## Convergence to the general orthogonal frame, at every layer
#
# The GOF metrics compare, at each layer $m$, the Gram matrices $W_{\ge m}W_{\ge m}^\top$ and
# $\bar H_m^\top \bar H_m$ with their predicted diagonal forms, and $W_{\ge m}$ with
# $D\bar H_m^\top$, the predicted self-duality with class-dependent scales $D$ (all with the
# normalised Frobenius distance of the authors' code). Rows are metrics, columns depths, colours
# layers.

# %% mystnb={"figure": {"caption": "Imbalanced classes: NC1 and the distances to the predicted general orthogonal frame (W W^T, class means, self-duality), per layer (colour) and depth (column). All fall to round-off level.", "name": "fig-22-gof"}, "image": {"alt": "Grid of log-scale line plots of NC1 and GOF distances against iteration, one panel per metric and depth, one line per layer, all falling to round-off."}}
labels = {"nc1": r"$\mathrm{NC}_1$", "nc2_pred_w": r"$WW^\top$ vs GOF", "nc2_pred": r"$\bar H^\top\bar H$ vs GOF",
          "nc3_pred_sub": r"$W$ vs $D\bar H^\top$", "nc2_of_w": r"$WW^\top$ vs OF", "nc2_of": r"$\bar H^\top\bar H$ vs OF"}
grid = nc.plots.facet_lines(table.query("run in @main and metric in ['nc1', 'nc2_pred_w', 'nc2_pred', 'nc3_pred_sub']"),
                            row="metric", col="depth", hue="layer", labels=labels,
                            row_order=["nc1", "nc2_pred_w", "nc2_pred", "nc3_pred_sub"], floor=1e-32)
grid.set_titles(row_template="{row_name}", col_template="$M$ = {col_name}").set_ylabels("")
plt.show()

# %% [markdown]
# Every GOF metric of every layer falls to round-off level: the deep linear network collapses to
# the general orthogonal frame layer by layer, as the theory predicts.
#
# ## The orthogonal-frame metric settles where the theory says
#
# A GOF is not an OF. The OF distances of the same runs therefore do not go to zero; they converge
# to the distance between the predicted GOF and the OF (dashed, one line per layer, in the layer's
# colour). Deeper layers see a more unequal frame.

# %% mystnb={"figure": {"caption": "The same runs measured against the orthogonal frame: the distances settle at the predicted GOF-to-OF distance (dashed, one per layer), not at zero.", "name": "fig-22-of"}, "image": {"alt": "Line plots of OF distances against iteration, one panel per metric and depth, each settling at a dashed predicted level above zero."}}
grid = nc.plots.facet_lines(table.query("run in @main and metric in ['nc2_of_w', 'nc2_of']"), row="metric",
                            col="depth", hue="layer", labels=labels, log_y=False, row_order=["nc2_of_w", "nc2_of"],
                            reference=predicted.query("run in @main and candidate == 'global'"))
grid.set_titles(row_template="{row_name}", col_template="$M$ = {col_name}").set_ylabels("distance")
plt.show()

# %% [markdown]
# The final OF distances of $WW^\top$ and of the logits $W\bar H$ next to their predictions:

# %%
of_end = end.query("run in @main and layer == 1 and metric in ['nc2_of_w', 'nc3_of']")
of_end.pivot_table(index="depth", columns="metric", values=["value", "predicted"])

# %% [markdown]
# ## Per-class norms
#
# The lengths of the frame, class by class: $\|w_k\|^2$ (rows of $W = W_M\cdots W_1$) and
# $\|\bar h_k\|^2$ (class means of $H_1$) at the last iteration, next to the closed form.

# %% mystnb={"figure": {"caption": "Per-class squared norms at the last iteration, measured (bars) next to the closed form: classifier rows ||w_k||^2 (top) and class means ||hbar_k||^2 (bottom), per depth.", "name": "fig-22-norms"}, "image": {"alt": "Bar charts of squared norms per class, measured next to predicted, per depth; the bars match."}}
norms = end.query("run in @main and metric in ['w_norm_sq', 'h_norm_sq']")
grid = nc.plots.measured_vs_predicted(
    norms.replace({"metric": {"w_norm_sq": "$\\|w_k\\|^2$", "h_norm_sq": "$\\|\\bar h_k\\|^2$"}}), x="k", row="metric", col="depth")
grid.set_titles(row_template="{row_name}", col_template="$M$ = {col_name}").set_xlabels("class k")
plt.show()

# %% [markdown]
# The bars agree to many digits. The ratio between the largest and the smallest class grows with
# depth, the depth amplification of imbalance that the paper points out.
#
# ## Minority collapse
#
# With a larger weight decay the smallest classes cannot pay for a non-zero classifier row. For
# $M = 1$ class $k$ vanishes iff $\beta_k \ge 1$, and its norm shrinks continuously to zero as
# $\beta_k$ crosses 1. For $M \ge 2$ the true threshold is $\beta^*_M = (M-1)^{(M-1)/M}/M$ and the
# norm jumps. The authors' code instead keeps every class whose stationarity equation has a root
# ($\beta_k \le \max\phi_M$); between the two thresholds its point is only a local minimum (our
# finding). The runs use $n = [40, 20, 10, 5]$. The candidates' per-class norms and losses, computed
# before the runs: for $M \ge 2$ each run is declared to end at the global minimizer, below the
# code's point by more than half the gap between their losses (`half_gap`, relative).

# %%
predicted.query("run in @minority and seed == @seed and metric in ['w_norm_sq', 'loss']").pivot_table(
    index=["depth", "lambda_W", "candidate"], columns=["metric", "k"], values="value")

# %% [markdown]
# The figure follows $\|w_k\|^2$ of each class along the iterations, with the global minimizer's
# non-zero values dashed; a vanishing class drops off the bottom of the plot.

# %% mystnb={"figure": {"caption": "Minority collapse: ||w_k||^2 of each class along the iterations, per depth (column) and seed (row); dashed the global minimum's value. The classes beyond the collapse threshold fall to zero.", "name": "fig-22-minority"}, "image": {"alt": "Log-scale line plots of squared classifier-row norms per class against iteration, per depth and seed; small classes fall to zero, the others settle at dashed levels."}}
grid = nc.plots.facet_lines(table.query("run in @minority and metric == 'w_norm_sq'"), col="depth", row="seed",
                            hue="k", palette="tab10", floor=1e-12, height=2.6,
                            reference=predicted.query("run in @minority and candidate == 'global' and metric == 'w_norm_sq'"))
grid.set_titles(row_template="seed {row_name}", col_template="$M$ = {col_name}").set_ylabels("$\\|w_k\\|^2$")
plt.show()

# %% [markdown]
# For $M = 1$ the smallest class ($k = 3$, five samples) shrinks to zero while the others settle
# at their closed forms. For $M = 2$ only the largest class survives: class $k = 1$ (twenty samples),
# which the code's rule would keep at $\|w_1\|^2 = 2.77$, vanishes as well, and the final loss
# matches the global minimum, not the code's point:

# %%
losses = predicted.query("run in @minority and metric == 'loss'").pivot_table(
    index=["run", "depth", "seed"], columns="candidate", values="value").reset_index()
outcome = losses.merge(end.query("metric == 'loss'")[["run", "value"]].rename(columns={"value": "loss"}), on="run")
outcome = outcome.assign(half_gap=(outcome.code - outcome["global"]) / outcome.code / 2,
                         below_code=(outcome.code - outcome.loss) / outcome.code)
outcome.drop(columns="run")

# %% [markdown]
# ## Claims
#
# The collapse, the GOF and the per-class norms are paper A's (norms as in the authors' code); the
# closed-form losses, the vanishing classes and the comparison with the code's rule are ours.

# %% tags=["hide-input"]
nb.check_rows(end.query("metric == 'loss'"), claim="M={depth}, n={counts}, lambda={lambda_W}: final loss equals "
              "the global f*", source="ours", measured="value", predicted="predicted", tolerance=loss_tolerance)
worst = end.query("run in @main and metric in ['nc1', 'nc2_pred_w', 'nc2_pred', 'nc3_pred_sub', 'nc3_pred']")
nb.check_rows(worst.groupby("depth").value.max().reset_index(), claim="M={depth}: NC1 and the GOF distances "
              "vanish at every layer", source="paper-A", measured="value", tolerance=metric_tolerance, kind="upper")
nb.check_rows(of_end, claim="M={depth}: OF distance {metric} settles at the predicted non-zero value",
              source="paper-A", measured="value", predicted="predicted", tolerance=metric_tolerance, kind="abs")
for (depth, metric), rows in norms.groupby(["depth", "metric"]):
    nb.check(f"M={depth}: per-class {metric} equal the closed form", source="paper-A", predicted=rows["predicted"],
             measured=rows["value"], tolerance=norm_tolerance)

# %% tags=["hide-input"]
vanished = end.query("run in @minority and metric == 'w_norm_sq' and predicted == 0")
for (depth, seed_), rows in vanished.groupby(["depth", "seed"]):
    nb.check(f"minority, M={depth}, seed {seed_}: classes {list(rows['k'])} vanish", source="ours", predicted=0.0,
             measured=rows["value"].max(), tolerance=collapse_tolerance, kind="upper")
if "code" in outcome:
    nb.check_rows(outcome.dropna(subset=["code"]), claim="minority, M={depth}, seed {seed}: gradient descent ends "
                  "below the code's point by more than half their gap", source="ours", measured="below_code",
                  tolerance="half_gap", kind="lower")
nb.finish()
