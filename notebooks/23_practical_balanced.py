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
# # Real networks, balanced classes: collapse in a deep linear head
#
# Paper A {cite}`dang2023neural` predicts the geometry that a stack of $M$ linear layers on top of
# any feature extractor reaches once the network fits its training set. We train ReLU networks with
# a deep linear head to zero training error, follow NC1, NC2 and NC3 at every head layer, and check
# that each mean-squared-error run lands on its predicted frame **and not on the other one**. With
# cross-entropy we check what {cite:t}`garrod2024persistence` proved for the deep linear model: for
# $M \ge 3$ layers the simplex ETF is not the global minimum.
#
# ```{prf:theorem} Paper A, as reconstructed: the frame of a balanced MSE head
# :label: thm-23-frames
#
# With balanced classes, mean squared error and weight decay on the head and on the features
# $H_1$, the global minima collapse at every head layer $m$ (NC1) {source}`paper: abstract`, and
# * without a bias, the class means of $H_m$ and the classifier $W_M\cdots W_m$ form an orthogonal
#   frame (OF) {source}`paper: abstract`;
# * with an unpenalised last-layer bias, they form a simplex ETF {source}`paper: abstract`.
# ```
#
# ```{prf:theorem} Garrod & Keating (2025), Theorem 1
# :label: thm-23-gk
#
# For the deep linear unconstrained-feature model with cross-entropy and width $\ge K$, no simplex
# ETF point is a global minimum when $K \ge 4$ and $M \ge 3$, or $K \ge 6$ and $M = 2$
# {source}`literature: garrod2024persistence` {cite:p}`garrod2024persistence`.
# ```
#
# ```{admonition} What this chapter checks
# :class: tip
# Real networks with a deep linear head: each MSE run lands on its predicted frame (OF without a
# bias, simplex ETF with one) and is nearer its own frame than the other by more than half their
# separation; cross-entropy heads deeper than one layer do not end at the ETF. What to look at:
# {numref}`fig-23-nc2` and the margin table.
# ```

# %% tags=["remove-cell"]
# Colab and Binder: install ncbook if this kernel lacks it (does nothing where it is installed).
import importlib.util

if importlib.util.find_spec("ncbook") is None:
    raise ModuleNotFoundError("ncbook is not installed: run `pip install -e .` in a clone of its repository")

# %% [markdown]
# ## Overview
#
# * **The checks in detail**: for every MSE run, NC2 of the classifier and of the class means
#   at every head layer is within `tolerance` of the predicted frame, and the classifier and the class
#   means are nearer their own frame than the other one by more than half the distance between the
#   two frames; for every cross-entropy run, the rank of the classifier.
# * **Setup** {source}`authors' code: train_1st_order.py, models/mlp.py`: a backbone produces the
#   features $H_1$; the head maps $H_{m+1} = W_m H_m$ for $m = 1, \dots, M$ with bias-free $W_m$,
#   except an optional bias on the last layer. The loss is the mean squared error on one-hot targets
#   plus, as in the authors' `--sep_decay` runs, $\frac{wd}{2}\sum_m \|W_m\|_F^2 +
#   \frac{fd}{2}\|H_1\|_F^2$ on each batch; the backbone is not decayed.
# * **Metrics** (`ncbook.metrics`, every `eval_every` epochs, on the training set): at head layer
#   $m$ the features $H_m$ and the classifier $W_M \cdots W_m$. NC1 $= \mathrm{Tr}(\Sigma_W
#   \Sigma_B^+)/K$; NC2 is the distance $\|\,\mathrm{nrm}(G) - T\,\|_F$ between a normalised Gram
#   matrix $G$ and the target $T$ (OF $= I_K/\sqrt K$, ETF $= (I_K - \mathbf 1\mathbf 1^\top/K)/\sqrt{K-1}$);
#   NC3 is the same distance for $W\bar H$.
# * **Data and scale.** The smoke profile trains a small MLP on 50 samples per class of
#   scikit-learn's 8x8 digits. The stored full profile is an offline stand-in that one CPU core
#   trains: the whole MNIST-1D training set (394 samples per class, the size of its smallest class;
#   40-sample signals), the authors' MLP recipe (six ReLU blocks with batch norm, Adam $10^{-4}$,
#   $wd = fd = 10^{-4}$, batch 128) at width 128, for as many optimiser steps as the authors' 200
#   CIFAR10 epochs (2520 MNIST-1D epochs, learning rate $\times 0.1$ every 630). With the authors'
#   200 epochs MNIST-1D is fitted but barely collapses (we measured NC1 near 1 at width 256).
#   The paper trains the same MLP at widths 512, 1024 and 2048 on CIFAR10 and EMNIST, and ResNet18
#   and VGG16 with a width-512 head, on a GPU: those runs are listed in `sweeps/paper-a-full.yaml`.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full" (the MNIST-1D stand-in)
device = "auto"  # "auto", "cpu" or "cuda"
seed = 0  # seeds model initialisation and batch order (the authors use 1)
dataset = "digits"  # "digits" or "mnist1d" (offline), or "cifar10", "mnist", "fashionmnist", "emnist_letters"
n_per_class = 50  # training samples per class, the first n of each class in file order; 0 for all
arch = "mlp"  # backbone: "mlp", or "vgg16" / "resnet18" (the authors ran those with MSE and a bias only)
width = 64  # d: MLP width and width of the head's hidden layers
depth_relu = 3  # MLP: number of [Linear, ReLU] blocks
batchnorm = False  # MLP: the authors' batch-norm variant (True) or plain ReLU blocks
depths = [1, 3]  # M, linear layers in the head
losses = ["mse", "ce"]  # cross-entropy runs use a bias (irrelevant for balanced CE)
epochs = 200
batch_size = 50
optimizer = "adam"  # "adam" or "sgd" (momentum 0.9)
lr = 1e-3
weight_decay = 1e-3  # wd: on the head weights (sep_decay) or on every parameter
feature_decay = 1e-3  # fd: on the features H_1 (sep_decay only)
sep_decay = True  # decay head weights and features in the loss (the authors' --sep_decay)
lr_step = 150  # learning rate x0.1 every lr_step epochs
eval_every = 10  # NC metrics every eval_every epochs
tolerance = 0.05  # largest final NC2/NC3 distance to the predicted frame accepted for MSE runs
ce_rank_rtol = 0.1  # singular values above ce_rank_rtol * largest count towards the CE rank

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

import ncbook as nc
from ncbook.experiments import practical

nb = nc.notebook(profile=profile, device=device, seed=seed)
config = nc.train.TrainConfig(
    epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
    feature_decay=feature_decay, sep_decay=sep_decay, lr_step=lr_step, eval_every=eval_every, seed=seed)
nc.plots.theme()

# %% [markdown]
# ## Data
#
# A balanced training set: the first `n_per_class` samples of each class, in the order the files
# store them (the authors' rule for their subsets). The held-out split only gives the test accuracy.

# %%
data = practical.balanced_training_set(nc.data.load(dataset), n_per_class)
print(f"{dataset}: {len(data.train)} training samples of shape {data.train.input_shape}, "
      f"K = {data.num_classes}; backbone {arch}, width {width}")

# %% [markdown]
# ## Training
#
# For an MLP, one run per head depth $M$, with and without the last-layer bias for MSE and with it
# for cross-entropy; for VGG16 and ResNet18 only the authors' runs (MSE with a bias). Every run
# writes its table to the chapter's results folder and a checkpoint after every epoch, so an
# interrupted execution resumes where it stopped.

# %%
net = nc.models.nets.NetConfig(arch=arch, num_classes=data.num_classes, input_shape=data.train.input_shape,
                               width=width, depth_relu=depth_relu, batchnorm=batchnorm)
runs = practical.balanced_runs(net, config, depths=depths, losses=losses)
history, models = nc.train.run_many(data, runs, profile=profile, notebook=nb.name, device=nb.device)
mse = history.query("loss == 'mse' and layer >= 1")

# %% [markdown]
# ## Zero training error, then collapse
#
# {numref}`fig-23-nc1` follows NC1 of the features $H_1$ that enter the head. Training accuracy
# reaches 100% early; NC1 keeps falling afterwards, the terminal phase of training in which
# {cite:t}`papyan2020prevalence` first saw collapse.

# %% mystnb={"figure": {"caption": "NC1 of the features $H_1$ over training, MSE runs, for each head depth $M$ (colour), with and without the last-layer bias (line style). Log scale.", "name": "fig-23-nc1"}, "image": {"alt": "Log-scale line plot of NC1 of the features against epoch, one line per head depth and bias setting, falling by orders of magnitude."}}
axes = sns.lineplot(data=mse.query("metric == 'nc1' and layer == 1"), x="epoch", y="value", hue="depth",
                    style="bias", palette="deep")
axes.set(yscale="log", ylabel=r"$\mathrm{NC}_1(H_1)$")
axes.legend(title=r"$M$, bias")
plt.show()

# %% [markdown]
# NC1 falls by orders of magnitude in every run. It takes the same value at every layer of a head:
# $\mathrm{Tr}(\Sigma_W\Sigma_B^+)$ does not change under an invertible linear map of the features,
# and the square head layers stay invertible.
#
# ## NC2: an orthogonal frame without bias, a simplex ETF with bias
#
# {numref}`fig-23-nc2` shows the distance of the classifier Gram matrix of the whole head,
# $WW^\top$ with $W = W_M\cdots W_1$, to both frames.

# %% mystnb={"figure": {"caption": "Distance of the normalised Gram matrix $WW^\\top$ of the end-to-end classifier to the orthogonal frame (OF) and to the simplex ETF, MSE runs, per head depth $M$ (row). Without bias (left) it approaches the OF; with a bias (right) the ETF. Log scale.", "name": "fig-23-nc2"}, "image": {"alt": "Log-scale line plots of the distances of the classifier Gram matrix to the OF and to the ETF against epoch, per depth and bias; the own frame falls, the other levels off near 0.32."}}
nc2 = mse[mse.metric.isin(["nc2_of_w", "nc2_etf_w"]) & (mse.layer == 1)]
grid = sns.relplot(data=nc2.replace({"nc2_of_w": "OF", "nc2_etf_w": "ETF"}), x="epoch", y="value",
                   hue="metric", row="depth", col="bias", kind="line", height=2.2, aspect=1.4)
grid.set(yscale="log").set_ylabels(r"$\|\mathrm{nrm}(WW^\top) - T\|_F$")
grid.set_titles(row_template="$M$ = {row_name}", col_template="bias = {col_name}")
grid.legend.set_title("frame $T$")
plt.show()

# %% [markdown]
# Each run converges to its own frame and stays near the distance
# $\sqrt{2 - 2\sqrt{(K-1)/K}}$ ($0.32$ for $K = 10$) from the other one: the bias alone decides
# between the two geometries, for every depth.
#
# ## Every layer of the head
#
# The prediction holds layer by layer: the class means of $H_m$, the classifier $W_M\cdots W_m$
# that layer $m$ feeds, and their product (NC3) all form the predicted frame. {numref}`fig-23-layers`
# shows each layer of the deepest head, against the OF without bias and the ETF (centred means) with.

# %% mystnb={"figure": {"caption": "Deepest head, MSE: distance to the predicted frame of the class means of $H_m$, of the classifier $W_M\\cdots W_m$, and of their product $W_M\\cdots W_m \\bar H_m$ (NC3), per head layer $m$ (colour). Left: no bias (OF); right: bias (ETF).", "name": "fig-23-layers"}, "image": {"alt": "Log-scale line plots of the distances to the predicted frame of the class means, the classifier and their product, per head layer, for the deepest head with and without bias."}}
own = {"nc2_of": "means", "nc2_of_w": "classifier", "nc3_of": "NC3", "nc2_etf": "means",
       "nc2_etf_w": "classifier", "nc3_etf": "NC3"}
frame = mse.metric.str.contains("_etf") == mse.bias  # the ETF metrics for the bias runs, OF otherwise
deep = mse[frame & mse.metric.isin(list(own)) & (mse.depth == mse.depth.max())].replace({"metric": own})
grid = sns.relplot(data=deep, x="epoch", y="value", hue="layer", row="metric", col="bias", kind="line",
                   height=2.4, aspect=1.3, palette="crest")
grid.set(yscale="log").set_ylabels("distance to the frame")
grid.set_titles(row_template="{row_name}", col_template="bias = {col_name}")
plt.show()

# %% [markdown]
# Every layer converges. The NC3 curves of all layers coincide: $W_M\cdots W_m\bar H_m$ is the
# same matrix, the logits of the class means, whichever layer it is computed from.
#
# ## Own frame or the other one?
#
# The OF and the ETF are only $0.32$ apart at $K = 10$, so "within `tolerance` of the predicted
# frame" alone cannot tell them apart when the tolerance is loose. For every MSE run the table
# gives, at the last epoch, the distances of $WW^\top$ and of the **uncentred** class-mean Gram
# $\bar H^\top \bar H$ of $H_1$ to the run's own frame and to the other one (centring turns an OF
# into an ETF, so centred means could not separate them), the largest own-frame NC2 and NC3 over
# the head layers, and the required margin: half the separation of the two frames.

# %%
margins = practical.frame_margins(history, models, data.train, nb.device)
margins = margins.assign(w_gap=margins.w_other - margins.w_own, h_gap=margins.h_other - margins.h_own)
margins.drop(columns="run").round(4)

# %% [markdown]
# Every run sits at its own frame, far inside the margin; the distance to the other frame is close
# to the full separation. The accuracies and NC1 of every run at the last epoch:

# %%
last = history[(history.epoch == history.epoch.max()) & history.layer.isin([0, 1])]
last.pivot_table(index=["loss", "depth", "bias"], columns="metric", values="value")[
    ["train_acc", "test_acc", "nc1"]].round(4)

# %% [markdown]
# ## Cross-entropy: the ETF for one layer, a lower rank for deeper heads
#
# Paper A's cross-entropy result (its Theorem A.1, for a model with a last-layer bias) states that
# the global minima form a simplex ETF. {cite:t}`garrod2024persistence` found a gap in its proof
# and proved {prf:ref}`thm-23-gk`: for $K \ge 4$ and $M \ge 3$ (or $K \ge 6$ and $M = 2$) the ETF
# is not the global minimum of the deep linear model; lower-rank configurations beat it. Before
# looking at the runs we declare what each one should show: rank $K-1$ (the ETF) for $M = 1$, and
# for a depth inside their scope a rank below $K-1$, i.e. not the ETF. We count singular values of
# the centred classifier (rows minus their mean), since cross-entropy ignores a shift common to
# all logits.

# %%
ce_runs = pd.DataFrame([{"run": name, "depth": net_.head_depth} for name, (net_, cfg) in runs.items()
                        if cfg.loss == "ce"], columns=["run", "depth"])
K = data.num_classes
ce_runs["in_scope"] = ((K >= 4) & (ce_runs.depth >= 3)) | ((K >= 6) & (ce_runs.depth == 2))
ce_runs["rank"] = ce_runs.run.map(practical.centred_ranks({n: models[n] for n in ce_runs.run}, ce_rank_rtol))
ce_runs

# %% [markdown]
# With one layer the classifier has rank $K-1$, as the ETF requires. With three or more layers its
# rank drops well below $K-1$: the trained network does not end at the simplex ETF, in line with
# {prf:ref}`thm-23-gk` for the deep linear model.
#
# ## Conclusion
#
# * A ReLU network with a deep linear head, trained with MSE to zero training error, collapses at
#   every head layer: NC1 falls steadily, and the class means and classifiers settle on the
#   orthogonal frame without a bias and on the simplex ETF with one, each clearly nearer its own frame
#   than the other.
# * With cross-entropy the ETF appears for one linear layer only; a deeper head ends at a lower
#   rank, as Garrod and Keating's theorem for the deep linear model allows.
#
# ## Claims
#
# The MSE geometry is paper A's prediction; the checks that the runs fit their data and collapse
# are ours; the cross-entropy ranks are checked against paper A ($M = 1$) and
# {cite:t}`garrod2024persistence` (deeper heads).

# %% tags=["hide-input"]
nc1 = mse.query("metric == 'nc1' and layer == 1").sort_values("epoch").groupby("run").value
nb.check("every run fits its training set (training accuracy 1)", source="ours", tolerance=1.0, kind="lower",
         measured=history.query("metric == 'train_acc' and epoch == epoch.max()").value.tolist())
nb.check_rows((nc1.first() / nc1.last()).rename("drop").reset_index(), claim="{run}: NC1 of H_1 falls at "
              "least 10x during training", source="ours", measured="drop", tolerance=10.0, kind="lower")
for key, what in [("w_own_max", "W_M..W_m W^T"), ("h_own_max", "class means of H_m"), ("nc3_own_max", "NC3")]:
    nb.check_rows(margins, claim=f"{{run}}: {what} at the {{frame}}, every head layer", source="paper-A",
                  measured=key, tolerance=tolerance, kind="upper")
for key, what in [("w_gap", "W W^T"), ("h_gap", "the uncentred class means of H_1")]:
    nb.check_rows(margins, claim=f"{{run}}: {what} nearer the {{frame}} than the other frame by more than "
                  "half their separation", source="paper-A", measured=key, tolerance="margin", kind="lower")

# %% tags=["hide-input"]
if (ce_runs.depth == 1).any():
    nb.check_rows(ce_runs[ce_runs.depth == 1], claim="CE {run}: the centred classifier has rank K-1 (simplex ETF)",
                  source="paper-A", measured="rank", predicted=K - 1, tolerance=0, kind="abs")
if ce_runs.in_scope.any():
    nb.check_rows(ce_runs[ce_runs.in_scope], claim="CE {run}: the centred classifier has rank below K-1 "
                  "(not the simplex ETF)", source="literature", cite="garrod2024persistence",
                  measured="rank", tolerance=K - 2, kind="upper")
nb.finish()
