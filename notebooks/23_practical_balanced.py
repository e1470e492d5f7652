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
# any feature extractor reaches once the network fits its training set: with mean squared error,
# the classifier and the class means form an *orthogonal frame* (OF) without a bias and a
# *simplex ETF* with an unpenalised last-layer bias, at every layer of the head. We train ReLU
# networks with a deep linear head to zero training error and follow NC1, NC2 and NC3 at every
# head layer, epoch by epoch. The smoke profile trains an MLP on scikit-learn's 8x8 digits on a CPU;
# the full profile trains the authors' MLP on CIFAR10 with their recipe. We also train with
# cross-entropy, where our analysis (not the paper's) predicts the ETF only for $M = 1$.

# %% [markdown]
# ## Overview
#
# * **Prerequisites**: the OF and ETF theorems of Part I, and the metrics of the introduction.
# * **Setup** (paper-a.md Section 5): a backbone produces the features $H_1$; the head maps
#   $H_{m+1} = W_m H_m$ for $m = 1, \dots, M$ with bias-free $W_m$, except an optional bias on the
#   last layer. The loss is the mean squared error on one-hot targets plus, as in the authors'
#   `--sep_decay` runs, $\frac{wd}{2}\sum_m \|W_m\|_F^2 + \frac{fd}{2}\|H_1\|_F^2$ on each batch; the
#   backbone is not decayed.
# * **Metrics** (`ncbook.metrics`, after every `eval_every` epochs, on the training set): at head
#   layer $m$ the features $H_m$ and the classifier $W_M \cdots W_m$ that maps them to the logits.
#   NC1 $= \mathrm{Tr}(\Sigma_W \Sigma_B^+)/K$; NC2 is the distance between normalised Gram
#   matrices $\|\,WW^\top/\|WW^\top\|_F - T\,\|_F$ for the target $T$ (OF $= I_K/\sqrt K$, ETF
#   $= (I_K - \mathbf 1\mathbf 1^\top/K)/\sqrt{K-1}$); NC3 is the same distance for $W\bar H$
#   (uncentred class means against the OF, centred against the ETF).

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, about a minute) or "full" (GPU, hours)
device = "auto"  # "auto", "cpu" or "cuda"
seed = 0  # seeds model initialisation and batch order
dataset = "digits"  # "digits" or "mnist1d" (offline), or "cifar10", "mnist", "fashionmnist", "emnist_letters"
n_per_class = 50  # training samples per class, the first n of each class in file order; 0 for all
arch = "mlp"  # backbone: "mlp", "vgg16" or "resnet18"
width = 64  # d: MLP width and width of the head's hidden layers
depth_relu = 3  # MLP: number of [Linear, ReLU] blocks
batchnorm = False  # MLP: the authors' batch-norm variant (True) or plain ReLU blocks
depths = [1, 3]  # M, linear layers in the head
losses = ["mse", "ce"]  # cross-entropy runs use a bias (irrelevant for balanced CE)
epochs = 200
batch_size = 50
optimizer = "adam"  # "adam" or "sgd" (momentum 0.9)
lr = 1e-3
weight_decay = 1e-3  # wd
feature_decay = 1e-3  # fd
sep_decay = True  # decay head weights and features in the loss (the authors' --sep_decay)
lr_step = 150  # learning rate x0.1 every lr_step epochs
eval_every = 10  # NC metrics every eval_every epochs
tolerance = 0.05  # largest final NC2/NC3 distance to the predicted frame accepted for MSE runs
ce_rank_rtol = 0.1  # singular values above ce_rank_rtol * largest count towards the CE rank
conv_archs = []  # also train these backbones ("vgg16", "resnet18"; 32x32 images only) with the
#                  authors' recipe for them: SGD, weight decay on every parameter, bias, MSE
conv_width = 512  # head width of the conv runs
conv_tolerance = 0.2  # largest final NC2 distance to the ETF accepted for the conv runs

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

import ncbook as nc

STEM = "23_practical_balanced"
torch_device = nc.profiles.setup(profile, device, seed)
nc.profiles.check_choice("dataset", dataset, nc.data.DATASETS)
n_per_class = nc.profiles.check_int("n_per_class", n_per_class, low=0)
depths = [nc.profiles.check_int(f"depths[{i}]", m, low=1, high=12) for i, m in enumerate(depths)]
losses = [nc.profiles.check_choice(f"losses[{i}]", v, nc.train.LOSSES) for i, v in enumerate(losses)]
tolerance = nc.profiles.check_float("tolerance", tolerance, low=0.0, low_open=True)
ce_rank_rtol = nc.profiles.check_float("ce_rank_rtol", ce_rank_rtol, low=0.0, high=1.0, low_open=True)
base_config = nc.train.TrainConfig(
    epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
    feature_decay=feature_decay, sep_decay=sep_decay, lr_step=lr_step, eval_every=eval_every, seed=seed)
conv_archs = [nc.profiles.check_choice(f"conv_archs[{i}]", a, ("vgg16", "resnet18")) for i, a in enumerate(conv_archs)]
conv_width = nc.profiles.check_int("conv_width", conv_width, low=1)
conv_tolerance = nc.profiles.check_float("conv_tolerance", conv_tolerance, low=0.0, low_open=True)
conv_config = replace(nc.train.AUTHORS_RECIPES["balanced_conv"], epochs=epochs, eval_every=eval_every, seed=seed)
ledger = nc.claims.Ledger(STEM, profile, paper="A")
sns.set_theme(style="whitegrid")

# %% [markdown]
# ## Data
#
# A balanced training set: the first `n_per_class` samples of each class, in the order the files
# store them (the same rule the authors use for their subsets). The held-out split only gives the
# test accuracy.

# %%
data = nc.data.load(dataset)
counts = [n_per_class] * data.num_classes if n_per_class else data.train.counts()
data = replace(data, train=nc.data.subset_by_counts(data.train, counts))
print(f"{dataset}: {len(data.train)} training samples {data.train.input_shape}, K = {data.num_classes}")

# %% [markdown]
# ## Training
#
# One run per head depth $M$, with and without the last-layer bias, for each loss, plus one run per
# depth for each backbone in `conv_archs` (the authors' VGG16/ResNet18 runs, full profile only).
# Every run writes its table to `results/<profile>/23_practical_balanced/<run>.csv` and a checkpoint
# after every epoch, so an interrupted execution resumes where it stopped.

# %%
base_net = nc.models.nets.NetConfig(arch=arch, num_classes=data.num_classes, input_shape=data.train.input_shape,
                             width=width, depth_relu=depth_relu, batchnorm=batchnorm)
runs = {f"{arch}_M{m}_{'bias' if b else 'nobias'}_{loss}": (replace(base_net, head_depth=m, bias=b),
                                                          replace(base_config, loss=loss))
        for loss in losses for m in depths for b in (False, True) if loss == "mse" or b}
runs |= {f"{a}_M{m}_bias_mse": (replace(base_net, arch=a, width=conv_width, head_depth=m), conv_config)
         for a in conv_archs for m in depths}
history, models = nc.train.run_many(data, runs, profile=profile, notebook=STEM, device=torch_device)
final = history[history.epoch == history.epoch.max()]

# %% [markdown]
# ## Zero training error, then collapse
#
# {numref}`fig-23-nc1` follows NC1 of the features $H_1$ that enter the head. Training accuracy
# reaches 100% early; NC1 keeps falling afterwards, the terminal phase of training in which
# {cite:t}`papyan2020prevalence` first saw collapse.

# %% mystnb={"figure": {"caption": "NC1 of the features $H_1$ over training, MSE runs, for each head depth $M$ (colour), with and without the last-layer bias (line style). Log scale.", "name": "fig-23-nc1"}}
mse = history.query("loss == 'mse' and layer >= 1 and arch == @arch")
axes = sns.lineplot(data=mse.query("metric == 'nc1' and layer == 1"), x="epoch", y="value", hue="depth",
                    style="bias", palette="deep")
axes.set(yscale="log", ylabel="NC1")
plt.show()

# %% [markdown]
# NC1 falls by two orders of magnitude in every run. It takes the same value at every layer of a
# head (the table below lists layer 1 only): $\mathrm{Tr}(\Sigma_W\Sigma_B^+)$ does not change
# under an invertible linear map of the features, and the square head layers stay invertible.
#
# ## NC2: an orthogonal frame without bias, a simplex ETF with bias
#
# The theory distinguishes the two heads sharply. {numref}`fig-23-nc2` shows the distance of the
# classifier Gram matrix of the whole head, $WW^\top$ with $W = W_M\cdots W_1$, to both frames.

# %% mystnb={"figure": {"caption": "Distance of the normalised Gram matrix $WW^\\top$ of the end-to-end classifier to the orthogonal frame (OF) and to the simplex ETF, MSE runs. Without bias (top row) it approaches the OF; with a bias (bottom row) the ETF. Log scale.", "name": "fig-23-nc2"}}
nc2 = mse[mse.metric.isin(["nc2_of_w", "nc2_etf_w"]) & (mse.layer == 1)]
grid = sns.relplot(data=nc2.replace({"nc2_of_w": "OF", "nc2_etf_w": "ETF"}), x="epoch", y="value",
                   hue="metric", col="depth", row="bias", kind="line", height=2.4, aspect=1.3)
grid.set(yscale="log", ylabel="NC2 distance")
plt.show()

# %% [markdown]
# Each run converges to its own frame and stays at the fixed distance
# $\sqrt{2 - 2\sqrt{(K-1)/K}}$ ($0.32$ for $K = 10$) from the other one: the bias alone decides
# between the two geometries, for every depth.
#
# ## Every layer of the head
#
# The theorem holds layer by layer: the class means of $H_m$, the classifier $W_M\cdots W_m$ that
# layer $m$ feeds, and their product (NC3) all form the predicted frame.
# {numref}`fig-23-layers` shows each layer of the deepest head, against the OF without bias and the
# ETF (with centred means) with bias.

# %% mystnb={"figure": {"caption": "Deepest head, MSE: distance to the predicted frame of the class means of $H_m$, of the classifier $W_M\\cdots W_m$, and of their product $W_M\\cdots W_m \\bar H_m$ (NC3), per head layer $m$ (colour). Top: no bias (OF); bottom: bias (ETF).", "name": "fig-23-layers"}}
own = {"nc2_of": "means", "nc2_of_w": "classifier", "nc3_of": "NC3", "nc2_etf": "means",
       "nc2_etf_w": "classifier", "nc3_etf": "NC3"}
frame = mse.metric.str.contains("_etf") == mse.bias  # the ETF metrics for the bias runs, OF otherwise
deep = mse[frame & mse.metric.isin(list(own)) & (mse.depth == max(depths))].replace({"metric": own})
grid = sns.relplot(data=deep, x="epoch", y="value", hue="layer", col="metric", row="bias", kind="line",
                   height=2.4, aspect=1.3, palette="crest")
grid.set(yscale="log", ylabel="distance to frame")
plt.show()

# %% [markdown]
# Every layer converges. The NC3 curves of all layers coincide: $W_M\cdots W_m\bar H_m$ is the
# same matrix, the logits of the class means, whichever layer it is computed from.
#
# ## Final values
#
# The table lists, for every run at the last epoch, the accuracies and, at the first head layer,
# NC1 and the distances to both frames.

# %%
table = final[final.layer.isin([0, 1])].pivot_table(index=["arch", "loss", "depth", "bias"], columns="metric",
                                                    values="value")
table[["train_acc", "test_acc", "nc1", "nc2_of_w", "nc2_etf_w", "nc3_of", "nc3_etf"]].round(4)

# %% [markdown]
# ## Cross-entropy: the ETF for one layer, a lower-rank frame for deep heads
#
# For cross-entropy the paper's abstract claims neural collapse as well. Our analysis of the deep
# linear model (Part I, and paper-a.md Section 2.3) finds that the simplex ETF is the global
# minimizer only for $M = 1$; for $M \ge 2$ and small regularisation an *orthoplex* of rank $K/2$
# has a lower objective. The singular values of the trained end-to-end classifier tell which one a
# real network finds. We count them for the centred classifier (rows minus their mean), since
# cross-entropy ignores a shift common to all logits.

# %%
ce_runs = [name for name in runs if name.endswith("_ce")]
classifiers = {name: models[name].classifiers()[0].detach().cpu() for name in ce_runs}
ce_ranks = {name: nc.metrics.numerical_rank(w - w.mean(0), ce_rank_rtol) for name, w in classifiers.items()}
pd.Series(ce_ranks, name=f"rank of the centred W (rtol {ce_rank_rtol})")

# %% [markdown]
# With one layer the classifier has rank $K-1$, as the ETF requires. With three layers its rank
# drops towards $K/2$, the rank of the orthoplex: the real network follows the deep linear model's
# true minimizer, not the ETF.
#
# ## Conclusion
#
# * A ReLU network with a deep linear head, trained with MSE to zero training error, collapses at
#   every head layer: NC1 falls steadily, and the class means and classifiers settle on the
#   orthogonal frame without a bias and on the simplex ETF with one, as paper A predicts.
# * The bias is what separates the OF from the ETF; the depth of the head does not change the frame.
# * With cross-entropy the ETF appears for one linear layer only; a deeper head drifts to a frame of
#   rank about $K/2$, in line with our finding that the ETF is not the global minimizer there.
#
# ## Claims

# %%
mse_final = final[(final.loss == "mse") & (final.layer >= 1) & (final.arch == arch)]
nc1_start = mse.query("metric == 'nc1' and layer == 1").groupby("run").value.first()
nc1_end = mse_final.query("metric == 'nc1' and layer == 1").set_index("run").value
ledger.check("every run fits its training set (train accuracy 1)", predicted=1.0,
             measured=final.query("metric == 'train_acc'").value.tolist(), tolerance=1.0, kind="lower")
ledger.check("MSE: NC1 at H_1 falls at least 10x during training (every run)", predicted=10.0,
             measured=(nc1_start / nc1_end).tolist(), tolerance=10.0, kind="lower")
for bias, frame in ((False, "of"), (True, "etf")):
    sel = mse_final[mse_final.bias == bias]
    ledger.check(f"MSE, {'with' if bias else 'no'} bias: W_M..W_m W^T -> {frame.upper()} at every layer",
                 predicted=0.0, measured=sel[sel.metric == f"nc2_{frame}_w"].value.tolist(),
                 tolerance=tolerance, kind="upper")
    ledger.check(f"MSE, {'with' if bias else 'no'} bias: NC3 to the {frame.upper()} at every layer",
                 predicted=0.0, measured=sel[sel.metric == f"nc3_{frame}"].value.tolist(),
                 tolerance=tolerance, kind="upper")
conv_final = final[(final.arch != arch) & (final.layer >= 1) & (final.metric == "nc2_etf_w")]
if len(conv_final):
    ledger.check("VGG16/ResNet18 with bias: W_M..W_m W^T -> ETF at every layer", predicted=0.0,
                 measured=conv_final.value.tolist(), tolerance=conv_tolerance, kind="upper")

# %% [markdown]
# The cross-entropy statements are ours (paper-a.md Section 2.3), recorded with `paper="ours"`.

# %%
ce_shallow = [ce_ranks[n] for n in ce_runs if runs[n][0].head_depth == 1]
ce_deep = [ce_ranks[n] for n in ce_runs if runs[n][0].head_depth >= 3]
if ce_shallow:
    ledger.check("CE, M = 1: the classifier has rank K-1 (simplex ETF)", predicted=data.num_classes - 1,
                 measured=ce_shallow, tolerance=data.num_classes - 1, kind="lower", paper="ours")
if ce_deep:
    ledger.check("CE, M >= 3: the classifier rank falls to about K/2 (orthoplex), below the ETF's K-1",
                 predicted=data.num_classes // 2, measured=ce_deep, tolerance=data.num_classes // 2 + 1,
                 kind="upper", paper="ours")
ledger.save()
ledger.table()

# %%
ledger.assert_all()
