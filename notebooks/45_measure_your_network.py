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
# # How to measure neural collapse in your own network
#
# You have a network and a training loop, and you want to know whether, where and when its features
# collapse. This chapter trains a small convolutional network on an offline data set and tracks
# NC1-NC4 at several layers over the epochs with `ncbook.metrics.collect`: one streaming pass over
# the evaluation data per measurement, float64 statistics whose memory does not grow with the data,
# on the GPU when there is one. It then shows the same measurement as a `torchmetrics` metric for
# Lightning or multi-GPU (DDP) training. The metrics follow {cite:t}`papyan2020prevalence`.

# %% [markdown]
# ```{admonition} The metrics, in one line each
# :class: note
# For the features $h$ that a layer receives, with class means $\mu_k$ and global mean $\mu_G$:
# * **NC1** $= \frac1K \operatorname{tr}(\Sigma_W \Sigma_B^{+})$, within-class over between-class
#   spread (0: every sample sits on its class mean);
# * **NC2** the distance of the centred class means' normalised Gram matrix from a simplex ETF's
#   (`nc2_etf`; 0: an ETF);
# * **NC3** the distance between the normalised classifier $W$ and the normalised centred means
#   (`nc3`; needs the linear map from this layer to the logits, so only for the last layer here);
# * **NC4** the share of samples whose nearest class mean (at this layer) disagrees with the
#   network's prediction (`nc4`).
# ```

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (CPU, under a minute) or "full"
device = "auto"  # "auto", "cpu" or "cuda"
seed = 0
dataset = "digits"  # an offline data set of ncbook.data: "digits" (8x8 images) here
epochs = 60  # training epochs
eval_every = 5  # measure NC every this many epochs (and after the first)
batch_size = 64  # training batch size
learning_rate = 0.05  # SGD with momentum 0.9
weight_decay = 5e-4  # L2 penalty on every parameter, as in the NC literature's protocols
nc1_drop = 0.5  # claim: NC1 of the last features falls at least by this factor over training

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ncbook as nc

nb = nc.notebook(profile=profile, device=device, seed=seed)
plt.rcParams.update({"font.size": 10})

# %% [markdown]
# ## Your network and your data
#
# Any `nn.Module` works. Ours: two convolutions, then three linear layers. The data are
# scikit-learn's 1797 real 8x8 handwritten digits, shipped with the package, so nothing is
# downloaded.

# %%
data = nc.data.load(dataset)
num_classes = data.num_classes
data.train.x.shape, data.train.counts()

# %%
net = nn.Sequential(
    nn.Unflatten(1, (1, 8, 8)),
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),  # (B, 512)
    nn.Linear(512, 64), nn.ReLU(),
    nn.Linear(64, 32), nn.ReLU(),
    nn.Linear(32, num_classes),
).to(nb.device)

# %%
generator = torch.Generator().manual_seed(seed)
train_loader = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size, shuffle=True,
                          generator=generator)
eval_loader = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=512)
optimizer = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=0.9, weight_decay=weight_decay)

# %% [markdown]
# ## Which layers to watch
#
# `collect` taps modules with forward hooks. With the default `tap="input"` it records what each
# module *receives*, so tapping the three linear layers measures the convolutional features, the
# two hidden layers and the penultimate features $H$ that the classifier reads. Only the last
# layer's map to the logits is linear, so NC3 is computed there alone.

# %%
layers = {"conv features": net[7], "hidden 1": net[9], "penultimate": net[11]}
classifiers = {"penultimate": net[11].weight}

# %% [markdown]
# ## The three lines in your training loop
#
# Below is an ordinary training loop; the three lines marked `# NC` are all it takes. Each
# measurement is one pass over the evaluation loader (a second pass with `nc4=True`, for NC4).

# %%
rows = []
for epoch in range(1, epochs + 1):
    for x, y in train_loader:
        optimizer.zero_grad()
        F.cross_entropy(net(x.to(nb.device)), y.to(nb.device)).backward()
        optimizer.step()
    if epoch == 1 or epoch % eval_every == 0:  # NC
        stats = nc.metrics.collect(net, eval_loader, layers, num_classes, nc4=True)  # NC
        rows += [{"epoch": epoch, "layer": n, **a.compute(classifiers.get(n))} for n, a in stats.items()]  # NC
history = pd.DataFrame(rows)
nb.save("nc_history.csv", history)

# %% [markdown]
# `history` is a tidy table, one row per (epoch, layer), with every metric of
# `nc.metrics.METRIC_KEYS`. {numref}`fig-45-history` plots four of them.

# %% mystnb={"figure": {"caption": "NC1-NC4 measured at three layers of a small CNN over training on the 8x8 digits (training data). NC1 (within- over between-class spread) and NC4 (nearest-class-mean disagreement) on a log scale; NC2 the distance of the class means from a simplex ETF; NC3 the distance between classifier and class means, for the penultimate layer only.", "name": "fig-45-history"}}
panels = [("nc1", "NC1", "log"), ("nc2_etf", "NC2 (distance to ETF)", "linear"),
          ("nc3", "NC3 (classifier vs means)", "linear"), ("nc4", "NC4 (NCC mismatch)", "symlog")]
colours = dict(zip(layers, plt.get_cmap("viridis")([0.1, 0.5, 0.85])))
fig, axes = plt.subplots(2, 2, figsize=(7, 5.6), sharex=True, layout="constrained")
for ax, (key, title, scale) in zip(axes.flat, panels):
    for name, part in history.groupby("layer", sort=False):
        ax.plot(part.epoch, part[key], "o-", ms=3, color=colours[name], label=name)
    ax.set_title(title)
    ax.set_yscale(scale, **({"linthresh": 1e-3} if scale == "symlog" else {}))
for ax in axes[-1]:
    ax.set_xlabel("epoch")
axes[0, 0].legend(fontsize=9)
plt.show()

# %% [markdown]
# NC1 falls steeply in the first epochs and ends lower the deeper the layer: the collapse is
# progressive through the network, as {cite:t}`parker2023neural` observe across architectures. With a constant learning rate it then levels off; the terminal
# phase of {cite:t}`papyan2020prevalence`, where NC1 keeps falling towards zero, takes hundreds of
# epochs (the full profile runs 200). The class means stay far from a simplex ETF in this short
# run, while the classifier keeps turning towards them (NC3) and the nearest-class-mean rule
# comes to agree with the network at the deeper layers (NC4). The last measurement, per layer:

# %%
last = history[history.epoch == history.epoch.max()].set_index("layer")
last[["nc1", "cdnv", "nc2_etf", "nc2_equinorm", "nc3", "nc4", "ncc_error", "rank"]].round(4)

# %% [markdown]
# ## The same metric in Lightning or DDP
#
# `nc.metrics.NCMetric` is a `torchmetrics.Metric` holding the same float64 statistics. Call
# `update(features, labels)` on each batch (in a Lightning `validation_step`, say); under
# DistributedDataParallel its states are summed across processes before `compute()`, so every
# process sees the metrics of the whole evaluation set. Set its `classifier` attribute for NC3.
# (NC4 needs a second pass and is not offered there; `collect(..., nc4=True)` has it.) In a
# `LightningModule`:
#
# ```python
# self.nc = nc.metrics.NCMetric(num_classes, num_features=64)   # in __init__
# self.nc.update(self.backbone(x), y)                           # in validation_step
# self.nc.classifier = self.fc.weight                           # in on_validation_epoch_end,
# self.log_dict(self.nc.compute()); self.nc.reset()             # then log and start afresh
# ```
#
# Here, on the penultimate features (`net[:11]` is everything before the classifier):

# %%
metric = nc.metrics.NCMetric(num_classes, num_features=net[11].in_features).to(nb.device)
with torch.no_grad():
    for x, y in eval_loader:
        metric.update(net[:11](x.to(nb.device)), y.to(nb.device))
metric.classifier = net[11].weight.detach()
via_metric = metric.compute()
{key: via_metric[key] for key in ("nc1", "nc2_etf", "nc3")}

# %% [markdown]
# ## Claims

# %%
penultimate = history[history.layer == "penultimate"].set_index("epoch")
nb.check(f"NC1 of the penultimate features falls over training (last / first, at most {nc1_drop})",
         source="literature", cite="papyan2020prevalence", kind="upper", tolerance=nc1_drop,
         measured=penultimate.nc1.iloc[-1] / penultimate.nc1.iloc[0])

# %%
nb.check("NC1 at the end of training decreases with depth (largest increase from one tapped layer to the next)",
         source="literature", cite="parker2023neural", kind="upper", tolerance=0.0,
         measured=float(last.loc[list(layers), "nc1"].diff().dropna().max()))
nb.check("NCMetric and collect agree (NC1, NC2, NC3 of the penultimate features)", source="consistency",
         measured=[via_metric[k] for k in ("nc1", "nc2_etf", "nc3")],
         predicted=[last.loc["penultimate", k] for k in ("nc1", "nc2_etf", "nc3")], tolerance=1e-9)

# %% [markdown]
# ## Conclusion
#
# * Three lines in a training loop give NC1-NC4 at any set of layers, from one streaming pass.
# * On this small CNN, NC1 and NC4 fall within a few dozen epochs and are lowest at the last
#   layer; NC2 (the ETF) is the slowest to appear.
# * For Lightning and DDP, `NCMetric` carries the same statistics and merges them across
#   processes.

# %%
nb.finish()
