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
# # Deep neural collapse versus low-rank solutions: the closed forms
#
# With a ReLU between the layers of the deep unconstrained-features model (DUFM), is deep neural
# collapse (DNC) still the global optimum? Two papers answer, and we could read their abstracts
# and the figure captions of the second, not their full text.
#
# ```{prf:theorem} Súkeník, Mondelli & Lampert (2023), the binary case
# :label: thm-31-1
# [literature: {cite:t}`sukenik2023deep`, abstract] In the deep unconstrained features model, the
# unique global optimum **for binary classification** ($K = 2$) exhibits all the properties of DNC.
# ```
#
# ```{prf:theorem} Paper B, as reconstructed from the abstract
# :label: thm-31-2
# [paper: abstract, {cite:t}`sukenik2024neural`] As soon as we go beyond two layers *or* two
# classes, DNC stops being optimal for the DUFM. The culprit is a low-rank bias of multi-layer
# regularisation, which leads to optimal solutions of even lower rank than neural collapse.
# [paper: Fig. 1 and 2 captions] The low-rank solution it compares with DNC is called the SRG
# (strongly regular graph) solution.
# ```
#
# Neither paper says that DNC is optimal at $L = 2$ for every $K$: the 2023 theorem is about
# $K = 2$. This chapter builds the model, computes the best DNC loss and the loss of **our own**
# SRG construction in closed form, checks both at explicit weights, and maps where SRG wins
# across the number of classes $K$, the depth $L$ and the weight decay $\lambda$.
#
# One modelling choice could not be read: whether the free features $H_1$ may take negative
# values. A ReLU backbone (such as the ResNet20 of paper B's real-data experiment) outputs
# $H_1 \ge 0$. We therefore report every comparison for **both variants**: $H_1$ free, and
# $H_1 \ge 0$. Tags: [paper: abstract / caption] is read in paper B; [literature: citation] in
# another paper; [ours: derived and verified here] is our derivation, checked numerically below.

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, seconds) or "full"
device = "auto"  # "auto", "cpu" or "cuda"; everything here runs on the CPU in float64
seed = 0
weight_decay = 0.004  # lambda_H and every lambda_W; paper B's value for K 10, L 4 (Fig. 2 caption)
n_per_class = 1  # n; once features collapse it only enters through n * lambda_H
rs = [4, 5, 6, 7]  # SRG sizes r (K is r(r-1)/2 classes)
depths = [2, 3, 4, 5, 6]  # depths L of the comparison tables
lambdas = [0.001, 0.004, 0.016]  # weight decays of the comparison table
k2_depth = 4  # depth of the two-class gradient-descent runs
k2_seeds = 3  # random starts with two classes (per H_1 variant)
k2_steps = 20000  # full-batch GD steps (lr 0.5) with two classes

# %% tags=["hide-input"]
from dataclasses import replace
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

import ncbook as nc
from ncbook.experiments import dufm
from ncbook.spec import UFMSpec

# %%
nb = nc.notebook(profile=profile, device=device, seed=seed)
nc.plots.theme()
pd.set_option("display.precision", 8)
wd, n = weight_decay, n_per_class
VARIANTS = {False: "H1 free", True: "H1 >= 0"}
relu_spec = partial(UFMSpec, lambda_W=wd, lambda_H=wd, activation="relu")  # every decay `weight_decay`

# %% [markdown]
# ## The model
#
# $K$ classes with $n$ samples each ($N = Kn$) have free features $H_1 \in \mathbb{R}^{d_1\times N}$,
# the output of an ideal backbone. $L$ bias-free layers follow, with a ReLU $\sigma$ after every
# hidden layer: $\tilde H_{l+1} = W_l H_l$, $H_{l+1} = \sigma(\tilde H_{l+1})$. With one-hot
# targets $Y$ the objective is
#
# $$
# \mathcal{L} = \frac{1}{2N}\bigl\|W_L H_L - Y\bigr\|_F^2 +
#   \sum_{l=1}^{L} \frac{\lambda_{W_l}}{2}\|W_l\|_F^2 + \frac{\lambda_{H_1}}{2}\|H_1\|_F^2 ,
# $$
#
# minimised over $H_1$ free or over $H_1 \ge 0$. This is our reading of the DUFM as
# {cite:t}`garrod2024persistence` describe it (no ReLU written on $H_1$); the normalisation
# constants are the usual ones of this literature. `nc.models.ReLUDUFM` implements it,
# `nc.theory` holds the closed forms below; all derivations are ours.
#
# ## The DNC family
#
# ```{prf:proposition} Our result: the best DNC loss
# :label: prop-31-3
# :class: tip
# [ours: derived and verified here] In a DNC solution the class means of every layer form an
# orthogonal frame, every ReLU is inactive and the output is $cI_K$. The $L+1$ factors ($H_1$ with
# constant $n\lambda_{H_1}$ and the $L$ weights) form a deep linear chain, whose balanced cost gives
#
# $$
# \mathcal{L}_{\mathrm{DNC}} = \min_{c\in[0,1]} \tfrac12(1-c)^2 + \tfrac{L+1}{2}\,K\,\bar\lambda\,
# c^{2/(L+1)}, \qquad \bar\lambda = \Bigl(n\lambda_{H_1}\prod_l \lambda_{W_l}\Bigr)^{1/(L+1)} .
# $$
#
# The minimising $H_1$ is $x_0[I_K; 0] \ge 0$, so the value is the same in both variants.
# ```
#
# `nc.models.dnc_dufm` builds the minimising weights; we evaluate the objective there.

# %%
dnc_checks = pd.DataFrame([
    {"K": K, "L": L, "n": m, "H1": VARIANTS[v],
     "closed form": nc.theory.dufm_dnc_loss(K, L, m, lambda_H=wd, lambda_W=wd, nonnegative_features=v),
     "objective at explicit weights": nc.models.dnc_dufm(relu_spec((m,) * K, L, 40, nonnegative_features=v)).objective_value()}
    for K, L, m in [(2, 3, 1), (2, 4, 5), (10, 4, 1), (10, 4, 5), (15, 5, 5)] for v in VARIANTS
])
dnc_checks

# %% [markdown]
# The two columns agree to the last printed digit. Below a threshold
# $\bar\lambda_{\mathrm{crit}}$ the nonzero DNC solution wins; above it the zero solution
# (loss $\tfrac12$) does, and the optimal scale $c$ jumps from $2(1-p)/(2-p)$ to $0$,
# $p = 2/(L+1)$ (`nc.theory.dufm_dnc_threshold`).

# %%
print(f"lambda_bar_crit(K=10, L=4) = {nc.theory.dufm_dnc_threshold(10, 4):.5f}, "
      f"(K=2, L=4) = {nc.theory.dufm_dnc_threshold(2, 4):.5f}")
nb.check("DNC closed form equals the objective at the explicit DNC weights (both H1 variants)", source="ours",
         predicted=dnc_checks["closed form"], measured=dnc_checks["objective at explicit weights"], tolerance=1e-12)

# %% [markdown]
# ## Our SRG construction
#
# Paper B's Fig. 1 caption describes its SRG solution for $L = 4$, $K = 10$, $r = 5$: in the third
# layer "the non-zero entries of each row have the same value and their number is $r - 1$"; before
# the last ReLU the class means have rank $r$, after it rank $K$; DNC has rank $K$ in all layers
# [paper: caption]. The construction below reproduces that caption; its details are ours.
#
# ```{prf:remark} Our result: the SRG construction
# :label: rem-31-4
# :class: tip
# [ours: derived and verified here] Let $K = \binom{r}{2}$ and identify the classes with the
# **edges** of the complete graph $K_r$. The vertex-edge incidence matrix $B \in \{0,1\}^{r\times K}$
# has rank $r$ and $B^\top B = 2I + A$, with $A$ the adjacency matrix of the triangular graph
# $T(r)$, a strongly regular graph. Class means stay proportional to $B$ through layers
# $2, \dots, L-1$ (every ReLU inactive). A readout $F$ with one row per $s$-subset $S$ of the
# vertices ($+\tfrac12$ on $S$, $-\tfrac12$ off it) makes $FB$ equal to $+1$ on edges inside $S$,
# $0$ on edges meeting $S$ once and $-1$ on the others; the last ReLU turns it into the inclusion
# matrix $C = \sigma(FB)$ of rank $K$. With $H_1$ free, $(H_1, W_1)$ is the balanced square root
# of $B$, which has entries of both signs; with $H_1 \ge 0$ we take $H_1 \propto B$ and
# $W_1 \propto I_r$ instead.
# ```
#
# {numref}`fig-srg-blocks` shows the blocks for $r = 5$, $s = 3$ (the "triangle readout").

# %% mystnb={"figure": {"caption": "Our SRG building blocks for r = 5 (K = 10), s = 3: the incidence matrix B, the pre-activation FB of the last hidden layer (rank 5), its ReLU C (rank 10), and the Gram matrix C^T C = 3I + A.", "name": "fig-srg-blocks"}}
readout, inclusion = nc.theory.srg_readout(5, 3)
blocks = {"B (r x K)": nc.theory.srg_incidence(5), "F B (pre-ReLU)": readout @ nc.theory.srg_incidence(5),
          "C = relu(F B)": inclusion, "C^T C": inclusion.T @ inclusion}
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, (title, matrix) in zip(axes, blocks.items()):
    sns.heatmap(matrix, ax=ax, cmap="vlag", center=0, annot=matrix.shape[0] <= 5, cbar=False, square=True)
    ax.set(title=title, xlabel="class (edge)")
plt.show()

# %% [markdown]
# Every row of $B$ has $r - 1 = 4$ equal non-zeros, the pattern of the Fig. 1 caption. With scalar
# multiples of $I_r$ in the middle, $F$ before the last ReLU and the ridge readout
# $W_L = (u^2C^\top C + K\lambda I)^{-1}uC^\top$ after it, the loss reduces to one scalar $u$
# [ours]:
#
# $$
# \mathcal{L}_{\mathrm{SRG}} = \min_{u>0}\ \tfrac{L}{2}\,G\,u^{2/L} +
#   \tfrac{\lambda_{W_L}}{2}\operatorname{tr}\bigl((u^2 C^\top C + K\lambda_{W_L} I)^{-1}\bigr),
# $$
#
# where $G$ collects the norms of the upstream factors: the nuclear norm $\|B\|_*$ twice for free
# $H_1$, $\|B\|_F^2 = 2K$ and $r$ for $H_1 \ge 0$, then $r$ per middle layer and
# $\|F\|_F^2 = mr/4$ (`nc.theory.dufm_srg_loss`). We check it at the explicit weights of
# `nc.models.srg_dufm`, for several readouts and depths, and record the ranks of the class means.

# %%
srg_checks = pd.DataFrame([
    {"r": r, "s": s, "L": L, "H1": VARIANTS[v],
     "closed form": nc.theory.dufm_srg_loss(r, s, L, 1, lambda_H=wd, lambda_W=wd, nonnegative_features=v),
     "objective at explicit weights": nc.models.srg_dufm(relu_spec((1,) * (r * (r - 1) // 2), L, 40, nonnegative_features=v), s).objective_value()}
    for r, s, L in [(5, 3, 4), (6, 3, 2), (5, 3, 3), (4, 2, 5), (6, 4, 3), (7, 4, 4)] for v in VARIANTS
])
srg_ranks = pd.concat({VARIANTS[v]: dufm.layer_metrics(nc.models.srg_dufm(relu_spec((n,) * 10, 4, 40, nonnegative_features=v), 3), ["rank"])
                       .set_index("name")["value"] for v in VARIANTS}, axis=1).T
display(srg_checks)
srg_ranks.rename_axis("rank of the class means (r = 5, L = 4)")

# %% [markdown]
# Closed form and objective agree to machine precision in both variants. The ranks are those of
# the Fig. 1 caption: $r = 5$ up to and including the pre-activation $\tilde H_4$ of the last
# hidden layer, and $K = 10$ only after its ReLU.

# %%
nb.check("SRG closed form equals the objective at the explicit SRG weights (both H1 variants)", source="ours",
         predicted=srg_checks["closed form"], measured=srg_checks["objective at explicit weights"], tolerance=1e-12)
nb.check("SRG point (L = 4, K = 10): rank r = 5 before the last ReLU, rank K = 10 after it (both variants)",
         source="paper-B", predicted=np.tile([5] * 6 + [10], 2), measured=srg_ranks.to_numpy().ravel(),
         tolerance=0, kind="abs")

# %% [markdown]
# ## DNC versus SRG across $K$, $L$ and $\lambda$
#
# `nc.theory.dufm_comparison_table` evaluates both families (the best readout size $s$ for SRG, all
# constants equal to $\lambda$) for both variants. {numref}`fig-srg-ratio` shows the ratio
# $\mathcal{L}_{\mathrm{SRG}}/\mathcal{L}_{\mathrm{DNC}}$; values below one mean DNC is not optimal.

# %%
comparison = nc.theory.dufm_comparison_table(rs, depths, lambdas, n, nonnegative_features=[False, True])
comparison["H1"] = comparison["nonnegative_features"].map(VARIANTS)
comparison.pivot_table(index=["H1", "r", "K"], columns=["lambda", "depth"], values="ratio").round(3)

# %% mystnb={"figure": {"caption": "Loss of the best SRG solution divided by the best DNC loss, for each H_1 variant (rows), weight decay (columns), number of classes K = r(r-1)/2 and depth L. Blue cells: the low-rank SRG solution beats deep neural collapse. The two rows differ most at L = 2.", "name": "fig-srg-ratio"}}
fig, axes = plt.subplots(2, len(lambdas), figsize=(4.2 * len(lambdas), 6.6), squeeze=False)
for (label, lam), part in comparison.groupby(["H1", "lambda"]):
    ax = axes[list(VARIANTS.values()).index(label), lambdas.index(lam)]
    sns.heatmap(part.pivot(index="K", columns="depth", values="ratio"), ax=ax, annot=True, fmt=".2f",
                cmap="vlag", center=1, vmin=0.6, vmax=1.4, cbar=False)
    ax.set_title(f"{label}, lambda = {lam:g}")
plt.tight_layout()
plt.show()

# %% [markdown]
# In both variants our construction beats DNC as soon as $L \ge 3$ for $K \ge 10$ and $L \ge 4$
# for $K = 6$ [ours], so it is a witness for paper B's statement that DNC stops being optimal beyond
# two layers. At $K = 10$, $L = 4$ the SRG loss is $0.816\,L_{\mathrm{DNC}}$ with $H_1$ free and
# $0.824\,L_{\mathrm{DNC}}$ with $H_1 \ge 0$ (about 18 % lower in both) [ours]. The sign of $H_1$
# matters at $L = 2$: with $H_1$ free our construction beats DNC for $K = 15$ (ratio $0.983$), with
# $H_1 \ge 0$ it never does here [ours; the next chapter tests it with gradient descent]. The ratio
# hardly depends on $\lambda$ until DNC reaches its zero threshold.

# %%
deep = comparison.query("depth >= 3").groupby("H1", as_index=False)["ratio"].min()
nb.check_rows(deep, claim="beyond two layers DNC is not optimal ({H1}): best SRG / DNC ratio at L >= 3",
              source="paper-B", measured="ratio", tolerance=0.999, kind="upper")
k10 = nc.theory.dufm_comparison_table([5], [4], [wd], n, nonnegative_features=[False, True])
nb.check_rows(k10.assign(H1=k10["nonnegative_features"].map(VARIANTS)), source="ours", measured="ratio",
              claim="our SRG point beats DNC by more than 17 % at K = 10, L = 4 ({H1})", tolerance=0.83, kind="upper")

# %%
two = nc.theory.dufm_comparison_table([6], [2], [wd], n, nonnegative_features=[False, True])
nb.check("L = 2, K = 15, H1 free: our rank-5 point beats DNC (ratio below 1)", source="ours",
         measured=two.query("not nonnegative_features")["ratio"], tolerance=0.99, kind="upper")
nb.check("L = 2, H1 >= 0: our SRG point never beats DNC (min ratio over r and lambda)", source="ours",
         measured=comparison.query("depth == 2 and nonnegative_features")["ratio"].min(), tolerance=1.0, kind="lower")

# %%
row = comparison.query("K == 10 and depth == 4")
row = row[row["lambda"] < nc.theory.dufm_dnc_threshold(10, 4) / n ** 0.2]  # below DNC's threshold
spread = row.groupby("H1", as_index=False)["ratio"].agg(np.ptp)
nb.check_rows(spread, claim="the ratio is almost lambda-independent below DNC's threshold (K = 10, L = 4, {H1})",
              source="ours", measured="ratio", tolerance=0.01, kind="upper")

# %% [markdown]
# {numref}`fig-loss-vs-lambda` follows one row across $\lambda$: $K = 10$, $L = 4$, in both variants.

# %% mystnb={"figure": {"caption": "K = 10, L = 4. Left: optimal loss of the DNC family, of our triangle-readout SRG family (H_1 free and H_1 >= 0) and of the naive SRG family (s = 2, H_1 >= 0 already) against the weight decay. Right: the SRG losses divided by the DNC loss. Dashed: DNC's threshold, beyond which the zero solution (loss 1/2) wins.", "name": "fig-loss-vs-lambda"}}
sweep = nc.theory.dufm_comparison_table([5], [4], np.geomspace(1e-4, 0.05, 40), n, nonnegative_features=[False, True])
wide = sweep.pivot(index="lambda", columns="nonnegative_features", values="srg").set_axis(
    ["SRG, H1 free", "SRG, H1 >= 0"], axis=1).assign(**{"SRG, naive": sweep.groupby("lambda")["naive"].first()})
dnc_line = sweep.groupby("lambda")["dnc"].first()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
wide.assign(DNC=dnc_line).plot(ax=axes[0], logx=True)
wide.div(dnc_line, axis=0).plot(ax=axes[1], logx=True)
for ax, label in zip(axes, ["optimal loss", "loss / L_DNC"]):
    ax.axvline(nc.theory.dufm_dnc_threshold(10, 4) / n ** 0.2, ls="--", color="k")
    ax.set(xlabel="lambda (all constants)", ylabel=label)
plt.show()

# %% [markdown]
# All SRG families lie below DNC over the whole range; the triangle readout, the structure gradient
# descent finds in the next chapter, is the best, and the sign constraint on $H_1$ costs it less
# than one percent. DNC jumps to the zero solution at its threshold while the SRG solutions stay
# non-trivial slightly beyond it.
#
# ## Small-$\lambda$ constants
#
# As $\lambda \to 0$ both losses are linear in $\lambda$: $\mathcal{L} \approx
# \tfrac{L+1}{2}\lambda\,C$ with $C_{\mathrm{DNC}} = K$ and a constant $C_{\mathrm{SRG}}(r, s, L)$
# (`nc.theory.srg_constant`), so $C_{\mathrm{SRG}}/K$ is the cleanest summary of who wins [ours].

# %%
constants = nc.theory.srg_constant_table(rs, sorted({*depths, 8, 12}), nonnegative_features=[False, True])
constants["H1"] = constants["nonnegative_features"].map(VARIANTS)
constants.pivot(index=["H1", "r", "K"], columns="depth", values="ratio").round(3)

# %% mystnb={"figure": {"caption": "Small-lambda ratio C_SRG/K against r (K = r(r-1)/2) for L = 3, 4, 5 (solid: H_1 free; dashed: H_1 >= 0), the analogue of paper B's Fig. 3 (left), whose caption plots L_SRG/L_DNC against r for these depths. Below the dotted line our SRG solution beats DNC.", "name": "fig-srg-constants"}}
curves = nc.theory.srg_constant_table(range(4, 13), [3, 4, 5], nonnegative_features=[False, True])
curves["H1"] = curves["nonnegative_features"].map(VARIANTS)
ax = sns.lineplot(data=curves, x="r", y="ratio", hue="depth", style="H1", marker="o", palette="viridis")
ax.axhline(1, ls=":", color="k")
ax.set(xlabel="r  (K = r(r-1)/2 classes)", ylabel="C_SRG / K")
plt.show()

# %% [markdown]
# The advantage of the low-rank solution grows with $K$ and with depth. Our solution has rank
# $r \approx \sqrt{2K}$, that is $\Theta(\sqrt K)$ [ours], while DNC needs rank $K$. Our reading of
# the mechanism behind the "low-rank bias" of the abstract: a stretch of layers with
# inactive ReLUs is a deep linear chain, whose weight decay acts like a Schatten quasi-norm of
# exponent $2/L$ and rewards low rank; the final ReLU then restores rank $K$ at the output [ours].

# %%
limit = pd.DataFrame([
    {"H1": VARIANTS[v], "constant": nc.theory.srg_constant(5, 3, 4, nonnegative_features=v) / 10,
     "ratio": nc.theory.dufm_srg_loss(5, 3, 4, 1, lambda_H=1e-6, lambda_W=1e-6, nonnegative_features=v)
     / nc.theory.dufm_dnc_loss(10, 4, 1, lambda_H=1e-6, lambda_W=1e-6)} for v in VARIANTS])
nb.check_rows(limit, claim="L_SRG / L_DNC tends to C_SRG / K as lambda -> 0 (K = 10, L = 4, lambda = 1e-6, {H1})",
              source="consistency", measured="ratio", predicted="constant", tolerance=1e-4, kind="abs")

# %% [markdown]
# ## Two classes
#
# For $K = 2$ {cite:t}`sukenik2023deep` prove that the global optimum is DNC (box above). In our
# model no SRG exists for $K = 2$, and a homogeneity argument shows why no construction of lower
# rank can fit [ours]: a bias-free ReLU network is positively homogeneous, so if some *post-ReLU*
# layer had class means $m_1 = a v$, $m_2 = b v$ with $a, b \ge 0$, every later layer, and so the
# output, would have proportional columns, and a rank-one output cannot fit $I_2$. Every hidden
# layer after a ReLU therefore has rank $2 = K$.
#
# Before the first ReLU this argument says nothing, and indeed the optimum is not unique there when
# $H_1$ may be negative [ours]: the pair $(H_1, W_1)$ only pays the nuclear norm of $\tilde H_2$,
# and $t\begin{pmatrix} 1 & -1\\ -1 & 1\end{pmatrix}$ has the same nuclear norm $2t$ as $tI_2$ and
# the same ReLU. So two **antipodal** class means of rank one in $H_1$ reach $\mathcal{L}_{\mathrm{DNC}}$
# exactly (`nc.models.antipodal_dufm`). With $H_1 \ge 0$ antipodal means are impossible.

# %%
spec2 = relu_spec((3,) * 2, k2_depth, 30)
antipodal = nc.models.antipodal_dufm(spec2)
antipodal_ranks = dufm.layer_metrics(antipodal, ["rank"]).set_index("name")["value"]
print(f"antipodal point: {antipodal.objective_value() / nc.models.dnc_dufm(spec2).objective_value():.15f} x L_DNC; "
      f"ranks {antipodal_ranks.astype(int).to_dict()}")

# %%
nb.check("K = 2, H1 free: antipodal rank-1 class means of H1 reach the DNC loss (not unique)", source="ours",
         predicted=dufm.dnc_loss_of(spec2), measured=antipodal.objective_value(), tolerance=1e-12)
nb.check("K = 2, H1 free: that point has rank 1 in H1 and H~2 and rank 2 after the first ReLU", source="ours",
         predicted=[1, 1] + [2] * (2 * k2_depth - 3), measured=antipodal_ranks.to_numpy(), tolerance=0, kind="abs")

# %% [markdown]
# Plain gradient descent (learning rate $0.5$, paper B's DUFM value [paper: caption]) from random
# starts, with $n = 3$ samples per class so that within-class collapse can be measured, in both
# variants (`nc.experiments.dufm.random_start_runs`; with $H_1 \ge 0$ each step is projected):

# %%
k2 = pd.concat([dufm.random_start_runs(replace(spec2, nonnegative_features=v), range(seed, seed + k2_seeds),
                                       steps=k2_steps).summary for v in VARIANTS], ignore_index=True)
k2["H1"] = k2["nonnegative_features"].map(VARIANTS)
k2[["H1", "seed", "loss", "ratio", "kind", "min rank", "max cdnv", "rank H1", "rank H~2"]]

# %% [markdown]
# Runs that fit the data end at the DNC loss (ratio one) with NC1 (here the CDNV, which stays
# defined when class means have low rank) at round-off level; the rank of $H_1$ and $\tilde H_2$
# can differ between runs (the freedom above), while the layers after a ReLU have rank $2$.
# A run can also stop above DNC ("stuck"): at a dead or non-collapsed critical point.

# %%
fitted = k2.query("kind != 'stuck'").groupby("H1", as_index=False)
nb.check_rows(k2.groupby("H1", as_index=False)["ratio"].min(), source="literature", cite="sukenik2023deep",
              claim="K = 2 ({H1}): no gradient-descent run ends below the DNC loss", measured="ratio",
              tolerance=1 - 1e-6, kind="lower")
nb.check_rows(fitted["ratio"].agg(lambda r: float(np.max(np.abs(r - 1)))), source="literature",
              cite="sukenik2023deep", claim="K = 2 ({H1}): every run that fits reaches the DNC loss (|ratio - 1|)",
              measured="ratio", tolerance=1e-3, kind="upper")

# %%
post = k2.filter(regex=r"^rank H\d+$").drop(columns="rank H1")  # layers after a ReLU
nb.check_rows(k2.assign(post_rank=post.min(axis=1)).query("kind != 'stuck'").groupby("H1", as_index=False)["post_rank"].min(),
              claim="K = 2 ({H1}): class means after every ReLU keep rank K = 2", source="ours",
              measured="post_rank", predicted=2, tolerance=0, kind="abs")
nb.check_rows(fitted["max cdnv"].max(), claim="K = 2 ({H1}): within-class variability collapses in every layer (CDNV)",
              source="literature", cite="sukenik2023deep", measured="max cdnv", tolerance=1e-6, kind="upper")

# %% [markdown]
# ## Contrast: deep linear heads keep the orthogonal frame
#
# Remove the ReLUs and the model is paper A's deep linear UFM {cite}`dang2023neural`. The low-rank
# trick is then impossible: the output $W_L\cdots W_1 H_1$ has rank at most the smallest rank of any
# layer, and nothing can raise it back to $K$. Paper A's global minimum (`nc.theory.mse_minimizer`,
# bias-free, balanced, as reconstructed in chapter 11) is the orthogonal frame, and its loss equals
# our $\mathcal{L}_{\mathrm{DNC}}$, since a DNC solution has inactive ReLUs.

# %%
linear_vs_dnc = pd.DataFrame([
    {"K": K, "L": L, "lambda": lam, "paper A minimum": nc.theory.mse_minimizer([n] * K, L, lambda_W=lam, lambda_H=lam).loss,
     "L_DNC": nc.theory.dufm_dnc_loss(K, L, n, lambda_H=lam, lambda_W=lam)}
    for K in (2, 6, 10, 15) for L in (1, 2, 4, 6) for lam in lambdas
])
nb.check("deep linear UFM (paper A, as reconstructed): global minimum equals L_DNC of the ReLU DUFM",
         source="consistency", predicted=linear_vs_dnc["L_DNC"], measured=linear_vs_dnc["paper A minimum"], tolerance=1e-12)
linear_vs_dnc.head(8)

# %% [markdown]
# ## Conclusion
#
# * [ours] The best DNC loss has a one-line closed form, the same for $H_1$ free and $H_1 \ge 0$;
#   explicit weights attain it to machine precision, and the threshold at which the zero solution
#   takes over is explicit.
# * [ours] Our SRG construction (classes = edges of $K_r$, incidence-matrix layers of rank $r$, a
#   readout over $s$-subsets of vertices whose ReLU restores rank $K$) has an exact one-dimensional
#   loss in both variants. It beats DNC for $K \ge 6$ once the model is deep enough ($L \ge 3$ for
#   $K \ge 10$), by about 18 % at $K = 10$, $L = 4$ ($0.816$ with $H_1$ free, $0.824$ with
#   $H_1 \ge 0$), a witness for paper B's statement that DNC is not optimal beyond two layers.
# * [ours] At $L = 2$ the sign of $H_1$ decides: with $H_1$ free our construction beats DNC for
#   $K = 15$ (ratio $0.983$), with $H_1 \ge 0$ it does not ($1.12$).
# * [literature and ours] For $K = 2$ gradient descent reaches the DNC loss, as
#   {cite:t}`sukenik2023deep` prove; with $H_1$ free the optimum is not unique before the first
#   ReLU (antipodal rank-one class means of $H_1$ reach the same loss).
# * [consistency] Without ReLUs (paper A) the orthogonal frame is optimal and its loss is exactly
#   $\mathcal{L}_{\mathrm{DNC}}$: the low-rank advantage is created by the nonlinearity.
#
# ## Claims

# %%
nb.finish()
