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
# # Gradient descent on the ReLU deep UFM finds low-rank solutions
#
# {cite:t}`sukenik2024neural` report that gradient descent on the four-layer ReLU deep
# unconstrained-features model (DUFM) with $K = 10$ classes, width $30$ and weight decay $0.004$
# usually ends *below* the loss of deep neural collapse (DNC), at class-mean matrices whose rank
# is smaller than $K$ in the hidden layers and equal to $K$ only after the last ReLU, while the
# features of each class still collapse to their mean (NC1). They also report that the rank falls
# as the weight decay grows and that DNC becomes more likely as the width grows. This chapter
# reproduces these claims with plain full-batch gradient descent from random starts, compares the
# solutions with the strongly-regular-graph (SRG) construction of the previous chapter, and then
# checks two findings of our own that go beyond the paper's statements.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; the runs use numpy on the CPU in float64
seed = 0
num_classes = 10  # K; the SRG comparison needs K of the form r(r-1)/2
depth = 4  # L layers after the free features
width = 30  # hidden width d, as in the paper
weight_decay = 0.004  # lambda_H and every lambda_W, as in the paper
n_per_class = 3  # n samples per class (n above 1 makes NC1 measurable)
learning_rate = 0.5  # plain GD, the paper's DUFM learning rate (halved on divergence)
seeds = 6  # random starts of the main experiment
steps = 30000  # GD steps of the main experiment
sweep_lambdas = [0.002, 0.004, 0.016]  # weight decays of the rank-versus-lambda sweep
sweep_widths = [16, 30, 64]  # widths of the rank-versus-width sweep
sweep_seeds = 3  # random starts per sweep point (n is 1 in the sweeps, as in the spec)
sweep_steps = 20000  # GD steps per sweep run
finding_seeds = 3  # random starts per depth in the small-K finding
finding_steps = 25000  # GD steps in the findings

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

import ncbook as nc

torch_device = nc.profiles.setup(profile, device, seed)
num_classes = nc.profiles.check_int("num_classes", num_classes, low=3, high=45)
depth = nc.profiles.check_int("depth", depth, low=3, high=10)
width = nc.profiles.check_int("width", width, low=num_classes)
weight_decay = nc.profiles.check_float("weight_decay", weight_decay, low=0.0, high=0.02, low_open=True)
n_per_class = nc.profiles.check_int("n_per_class", n_per_class, low=2)
learning_rate = nc.profiles.check_float("learning_rate", learning_rate, low=0.0, high=2.0, low_open=True)
seeds = nc.profiles.check_int("seeds", seeds, low=2)
steps = nc.profiles.check_int("steps", steps, low=1000)
sweep_lambdas = [nc.profiles.check_float("sweep_lambdas", x, low=0.0, high=0.05, low_open=True)
                 for x in sweep_lambdas]
sweep_widths = [nc.profiles.check_int("sweep_widths", w, low=num_classes) for w in sweep_widths]
sweep_seeds = nc.profiles.check_int("sweep_seeds", sweep_seeds, low=1)
sweep_steps = nc.profiles.check_int("sweep_steps", sweep_steps, low=1000)
finding_seeds = nc.profiles.check_int("finding_seeds", finding_seeds, low=1)
finding_steps = nc.profiles.check_int("finding_steps", finding_steps, low=1000)
r = int(round((1 + np.sqrt(1 + 8 * num_classes)) / 2))
if r * (r - 1) // 2 != num_classes:
    raise ValueError(f"`num_classes` must be r(r-1)/2 for an integer r (6, 10, 15, ...), got {num_classes}")
ledger = nc.claims.Ledger("32_dufm_gradient_descent", profile, paper="B")
sns.set_theme(style="whitegrid")
K, L, wd, n = num_classes, depth, weight_decay, n_per_class

# %% [markdown]
# ## Overview
#
# The model and the two families of solutions are those of the previous chapter: the loss
# $\mathcal{L}_{\mathrm{DNC}}$ of the best DNC solution (orthogonal-frame class means of rank $K$
# in every layer) and the loss $\mathcal{L}_{\mathrm{SRG}}$ of the SRG construction (classes =
# edges of $K_r$, class means of rank $r$ until the last ReLU). For the default $K = 10$, $L = 4$:

# %%
dnc = nc.theory.dufm_dnc_loss(K, L, n, wd, wd)
srg, best_s = min((nc.theory.dufm_srg_loss(r, s, L, n, wd, wd), s) for s in range(2, r))
print(f"L_DNC = {dnc:.6f}, L_SRG = {srg:.6f} (r = {r}, s = {best_s}), ratio {srg / dnc:.4f}")

# %% [markdown]
# **Protocol** (the team's spec, Section 3.2): features $H_1 \sim N(0, 1)$, weights
# $W_l \sim N(0, 1/d)$; full-batch gradient descent with learning rate $0.5$ and no momentum, in
# float64, with hand-written gradients (`nc.models.dufm_gradient_descent`, about ten times faster than
# autograd at these sizes and checked against it in the tests). A run is called *DNC* if every
# class-mean matrix, before and after each ReLU, has rank $K$ and the loss is within $0.5\,\%$ of
# $\mathcal{L}_{\mathrm{DNC}}$; *low-rank* if some rank is below $K$ and the loss is below
# $\mathcal{L}_{\mathrm{DNC}}$; *stuck* if the loss is above it. Ranks count the singular values
# above $10^{-3}$ times the largest. One pitfall: at low-rank solutions some pre-activations sit
# exactly on the ReLU kink, so the gradient norm never vanishes (it chatters around $10^{-2}$);
# we judge convergence by the loss.
#
# ## Gradient descent from random starts

# %%
runs = nc.models.random_start_runs(K, n, L, width, wd, wd, range(seed, seed + seeds), steps, learning_rate)
runs.summary[["seed", "ratio", "kind", "min rank", f"rank H{L}", "max NC1"]]

# %% [markdown]
# {numref}`fig-gd-loss` shows the loss of every run divided by $\mathcal{L}_{\mathrm{DNC}}$.

# %% mystnb={"figure": {"caption": "Training loss divided by the DNC loss, one line per random start. Dashed: DNC (1) and the SRG construction. Runs that end below the dashed line at 1 have found a solution better than deep neural collapse.", "name": "fig-gd-loss"}}
ax = sns.lineplot(data=runs.histories.query("step > 0"), x="step", y="ratio", hue="seed", palette="tab10")
ax.axhline(1, ls="--", color="k", label="DNC")
ax.axhline(srg / dnc, ls=":", color="crimson", label=f"SRG (r = {r}, s = {best_s})")
ax.set(yscale="log", ylabel="loss / L_DNC", ylim=(0.75, 3))
ax.legend(fontsize=8, ncol=2)
plt.show()

# %% [markdown]
# Most runs cross the DNC line and settle below it, between the DNC and SRG losses; the others
# converge to DNC. The distribution of the final ratios, and the ranks behind it:

# %%
runs.summary[["ratio"]].describe().T

# %% [markdown]
# {numref}`fig-gd-spectra` shows the singular values of the class-mean matrices in every layer
# (the paper's Figure 2, right), for each run and for the SRG construction.

# %% mystnb={"figure": {"caption": "Singular values of the class-mean matrix in each layer (H~ before the ReLU), normalised by the largest, for every GD run (thin lines) and for the SRG construction (black). Values below 1e-3 (dotted) are counted as zero.", "name": "fig-gd-spectra"}}
spectra = pd.concat([nc.models.layer_spectra(m).assign(seed=s_) for s_, m in runs.models.items()])
reference = nc.models.layer_spectra(nc.models.srg_dufm(r, best_s, n, L, width, wd, wd))
order = list(reference["layer"].unique())
grid = sns.relplot(data=spectra, x="index", y="value", col="layer", col_order=order, units="seed", estimator=None,
                   kind="line", col_wrap=L, height=2.3, alpha=0.5, lw=1, facet_kws={"ylim": (1e-6, 2)})
for ax, name in zip(grid.axes.flat, order):
    part = reference[reference["layer"] == name]
    ax.plot(part["index"], part["value"].clip(lower=1e-6), color="k", lw=2)
    ax.axhline(1e-3, ls=":", color="grey")
grid.set(yscale="log")
plt.show()

# %% [markdown]
# The spectra drop sharply after a few singular values in every hidden layer and in the last
# pre-activation $\tilde H_L$, and become full after the last ReLU ($H_L$), the signature of the
# SRG construction: a stretch of linear-looking layers of low rank, and a ReLU that restores rank
# $K$. Next to it, {numref}`fig-gd-gram` compares Gram matrices of the class means of the best run
# with those of the SRG construction.

# %% mystnb={"figure": {"caption": "Normalised Gram matrices M^T M of the class means (K x K) of the second hidden layer, of the last pre-activation and of the last post-ReLU layer: the best GD run (top) and the SRG construction (bottom). Class order is arbitrary in the GD solution.", "name": "fig-gd-gram"}}
best_seed = int(runs.summary.loc[runs.summary["ratio"].idxmin(), "seed"])
points = {f"GD, seed {best_seed}": runs.models[best_seed], "SRG": nc.models.srg_dufm(r, best_s, n, L, width, wd, wd)}
fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
for row, (title, point) in zip(axes, points.items()):
    means, ranks = nc.models.class_mean_layers(point), nc.models.layer_ranks(point)
    for ax, name in zip(row, ["H2", f"H~{L}", f"H{L}"]):
        sns.heatmap(nc.geometry.normalized(means[name].T @ means[name]), ax=ax, cmap="vlag", center=0, cbar=False)
        ax.set_title(f"{title}: {name}, rank {ranks[name]}")
plt.show()

# %% [markdown]
# In both rows the hidden-layer Gram matrices have non-negative entries (the ReLUs are inactive
# on the class means, so the features are non-negative and of low rank), the last pre-activation
# has negative entries that the ReLU cuts off, and the post-ReLU Gram is full rank with a clear
# diagonal. GD does not always land exactly on the SRG structure: its ranks vary between runs, the
# analogue of the paper's spread over runs, and its loss lies between SRG and DNC.
#
# Meanwhile the features of each class collapse: NC1 (here the trace ratio
# $\operatorname{tr}\Sigma_W/\operatorname{tr}\Sigma_B$, which stays defined when the class means
# have low rank) in every layer, for every run:

# %%
nc1 = pd.DataFrame({s_: nc.models.layer_nc1(m) for s_, m in runs.models.items()}).T.rename_axis("seed")
nc1

# %%
fitted = runs.summary.query("kind != 'stuck'")
low = runs.summary.query("kind == 'low-rank'")
ledger.check("GD from random starts usually ends below the DNC loss (fraction of runs)", predicted=0.9,
             measured=float((runs.summary["ratio"] < 1).mean()), tolerance=0.5, kind="lower")
ledger.check("the best GD run beats DNC by more than 5 %", predicted=srg / dnc,
             measured=runs.summary["ratio"].min(), tolerance=0.95, kind="upper")
ledger.check("no GD run beats the SRG construction (by more than 0.5 %)", predicted=srg / dnc,
             measured=runs.summary["ratio"].min(), tolerance=srg / dnc - 0.005, kind="lower", paper="ours")
ledger.check("low-rank runs: rank below K in the hidden layers", predicted=K - 1,
             measured=low["min rank"] if len(low) else [K], tolerance=K - 1, kind="upper")
ledger.check("low-rank runs: rank K after the last ReLU", predicted=K, measured=low[f"rank H{L}"],
             tolerance=0, kind="abs")
ledger.check("DNC1 survives: NC1 (trace ratio) ~ 0 in every layer of every fitted run", predicted=0.0,
             measured=fitted["max NC1"], tolerance=1e-6, kind="upper")
ledger.table().tail(6)

# %% [markdown]
# ## Rank against weight decay and width
#
# The paper's Figure 3 (middle, right): the average rank at convergence falls as the weight decay
# grows, and DNC is found more often in wider models. We rerun the protocol with $n = 1$ (as in
# the spec's runs) over a grid of weight decays at the default width and over a grid of widths at
# the default weight decay.

# %%
grid = [(width, lam) for lam in sweep_lambdas] + [(w, wd) for w in sweep_widths]
sweep = nc.models.random_start_sweep(K, 1, L, grid, range(seed, seed + sweep_seeds), sweep_steps, learning_rate)
sweep["full rank"] = sweep["min rank"] == K
by_lambda = sweep.query("width == @width").groupby("lambda")[["rank H2", "min rank", "ratio", "full rank"]].mean()
by_width = sweep.query("`lambda` == @wd").groupby("width")[["rank H2", "min rank", "ratio", "full rank"]].mean()
display(by_lambda.round(3))
by_width.round(3)

# %% mystnb={"figure": {"caption": "Left: rank of the class means of the second layer H_2 against the weight decay (width fixed). Right: fraction of runs with rank K in every layer (DNC-like) against the width (weight decay fixed). Dots are runs, lines are means.", "name": "fig-gd-sweeps"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
sns.pointplot(data=sweep.query("width == @width"), x="lambda", y="rank H2", ax=axes[0], errorbar=None)
sns.stripplot(data=sweep.query("width == @width"), x="lambda", y="rank H2", ax=axes[0], color="grey", alpha=0.6)
sns.pointplot(data=sweep.query("`lambda` == @wd"), x="width", y="full rank", ax=axes[1], errorbar=None)
axes[0].set(ylabel="rank of H_2 class means", xlabel="weight decay")
axes[1].set(ylabel="fraction of full-rank (DNC) runs", ylim=(-0.05, 1.05))
plt.show()

# %% [markdown]
# The rank of the hidden layers falls as the weight decay grows, and full-rank (DNC) solutions
# become the rule as the width grows, as the paper reports. Both trends fit the low-rank-bias
# picture: weight decay is what rewards low rank, while a wide random start sits closer to a
# full-rank configuration that gradient descent then merely refines.

# %%
ledger.check("mean rank of H_2 falls from the smallest to the largest weight decay", predicted=1.0,
             measured=by_lambda["rank H2"].iloc[0] - by_lambda["rank H2"].iloc[-1], tolerance=1.0, kind="lower")
ledger.check("DNC becomes more frequent with width (fraction at widest minus narrowest)", predicted=1.0,
             measured=by_width["full rank"].iloc[-1] - by_width["full rank"].iloc[0], tolerance=0.5, kind="lower")
ledger.table().tail(2)

# %% [markdown]
# ## Two findings of ours
#
# The following two statements are **our own findings**, derived and checked by the team; they are
# not in the parts of the papers we could read, and they go against a literal reading of
# "DNC is optimal for two layers" and of the paper's appendix summary for small $K$. They are
# recorded in the ledger with the label *ours*.
#
# ### Finding 1: at $L = 2$, DNC is not optimal for $K = 15$
#
# For two layers the readout step itself is the whole model: $(H_1, W_1)$ produce $uFB$ directly.
# For $r = 6$ ($K = 15$) and the triangle readout $s = 3$, the first pre-activation $FB$ has rank
# $r - 1 = 5$, and the loss is $0.086684$ against $\mathcal{L}_{\mathrm{DNC}} = 0.088162$
# ($\lambda = 0.004$, $n = 1$): about $1.7\,\%$ lower. We evaluate the explicit point and then run
# gradient descent from it after a small perturbation.

# %%
dnc15 = nc.theory.dufm_dnc_loss(15, 2, 1, 0.004, 0.004)
point15 = nc.models.srg_dufm(6, 3, 1, 2, 30, 0.004, 0.004)
after = nc.models.dufm_gradient_descent(point15.perturbed(1e-3, seed=seed), finding_steps // 2, learning_rate)
print(f"explicit point: {point15.objective_value() / dnc15:.5f} x L_DNC; after GD: "
      f"{after.history['loss'].iloc[-1] / dnc15:.5f} x L_DNC; ranks {nc.models.layer_ranks(after.model)}")

# %%
ledger.check("L = 2, K = 15: the explicit rank-5 point has loss below L_DNC (0.086684 vs 0.088162)",
             predicted=0.086684456 / 0.088162206, measured=point15.objective_value() / dnc15,
             tolerance=1e-6, kind="abs", paper="ours")
ledger.check("L = 2, K = 15: GD started near it stays below the DNC loss", predicted=point15.objective_value() / dnc15,
             measured=after.history["loss"].iloc[-1] / dnc15, tolerance=1 - 1e-3, kind="upper", paper="ours")
ledger.table().tail(2)

# %% [markdown]
# The point is a genuine local minimum of lower loss than DNC: gradient descent stays there, at
# rank $5$ before the ReLU and $15$ after it. The margin is small ($1.7\,\%$), and random starts at
# $L = 2$ still find DNC (spec, Section 3.3), but DNC is not the global optimum under this model
# (no ReLU on $H_1$). If the paper's two-layer statement assumes a different model, the two are
# compatible; we could not check the exact statement.
#
# ### Finding 2: for small $K$, low rank wins at $L = 6$ but not at $L = 4$
#
# $K = 5$ is not of the form $\binom{r}{2}$, so no SRG witness exists. Yet at depth $6$ gradient
# descent from random starts finds solutions of rank $4$ below the DNC loss, while at depth $4$
# every run converges to DNC (weight decay $0.016$, width $30$, $n = 1$). The paper's appendix
# figure was summarised as showing low-rank wins "even for small $K$" at $L = 4$; with this
# protocol we could not reproduce that at $L = 4$.

# %%
small = pd.concat([
    nc.models.random_start_runs(5, 1, depth_, 30, 0.016, 0.016, range(seed, seed + finding_seeds), finding_steps,
                             learning_rate).summary.assign(depth=depth_)
    for depth_ in (4, 6)
])
small[["depth", "seed", "ratio", "kind", "min rank"]]

# %%
ledger.check("K = 5, L = 6: some random start ends low-rank, below the DNC loss (count)", predicted=1,
             measured=int((small.query("depth == 6")["kind"] == "low-rank").sum()), tolerance=1,
             kind="lower", paper="ours")
ledger.check("K = 5, L = 4: every random start converges to DNC (loss / L_DNC)", predicted=1.0,
             measured=small.query("depth == 4")["ratio"], tolerance=2e-3, kind="abs", paper="ours")
ledger.table().tail(2)

# %% [markdown]
# ## Conclusion
#
# * Plain gradient descent on the $4$-layer ReLU DUFM with $K = 10$ usually ends below the DNC
#   loss, reproducing the central experimental claim of {cite:t}`sukenik2024neural`; the runs end
#   between the DNC and the SRG losses, and none beats the SRG construction.
# * These solutions have class means of rank below $K$ in every hidden layer and rank $K$ only after
#   the last ReLU, while within-class variability still collapses (NC1 $\approx 0$): DNC1 survives,
#   DNC2 (orthogonal frames of rank $K$) does not.
# * The hidden-layer rank falls with the weight decay, and DNC becomes the typical outcome as the
#   width grows.
# * Ours: DNC is not optimal even at $L = 2$ for $K = 15$ (by $1.7\,\%$), and for $K = 5$ low rank wins
#   at $L = 6$ but gradient descent finds DNC at $L = 4$.
#
# ## Claims

# %%
ledger.save()
ledger.table()

# %%
ledger.assert_all()
