"""ncbook.train: the objective against its formula, training to zero error, checkpoints (exact
resume after a real kill, weights-only loading, foreign checkpoints), divergence, GOF targets
against paper-a.md numbers, per-class norms against a loop oracle, and bad parameters."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import ncbook as nc
import ncbook.train as train
from ncbook import checkpoint as checkpoints
from ncbook.data import DataBundle, Split
from ncbook.models.nets import NetConfig
from ncbook.train import TrainConfig, TrainingDiverged, fit

ROOT = Path(__file__).resolve().parents[1]


def _toy(n_per_class: int = 12, k: int = 3, dim: int = 6, seed: int = 0) -> DataBundle:
    """Well separated Gaussian classes (a unit-test fixture, not a benchmark data set)."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(k, dim, generator=g)
    y = torch.arange(k).repeat_interleave(n_per_class)
    x = centres[y] + 0.3 * torch.randn(len(y), dim, generator=g)
    return DataBundle("toy", Split(x, y, k), Split(x[::2], y[::2], k))


def _net(depth: int = 2, bias: bool = False, width: int = 8) -> NetConfig:
    return NetConfig(input_shape=(6,), num_classes=3, width=width, depth_relu=1, head_depth=depth, bias=bias)


QUICK = TrainConfig(epochs=6, batch_size=12, optimizer="adam", lr=1e-2, sep_decay=True, lr_step=4)


def test_objective_matches_the_authors_formula():
    torch.manual_seed(0)
    model = nc.models.nets.build(_net(depth=3, bias=True)).train()
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 1, 0])
    config = TrainConfig(sep_decay=True, weight_decay=0.3, feature_decay=0.2, mse_scale=0.5)
    with torch.no_grad():
        h = model.backbone(x)
        z = model.head(h)
        onehot = np.eye(3)[y.numpy()]
        mse = ((z.numpy() - onehot) ** 2).sum() / (5 * 3)
        penalty = sum((layer.weight.numpy() ** 2).sum() for layer in model.head)
        expected = 0.5 * mse + 0.3 / 2 * penalty + 0.2 / 2 * (h.numpy() ** 2).sum()
    got = nc.train._objective(model, x, y, config)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    ce = nc.train._objective(model, x, y, TrainConfig(loss="ce"))  # no sep_decay: no penalties
    log_softmax = z - torch.logsumexp(z, 1, keepdim=True)
    assert ce.item() == pytest.approx(-log_softmax[torch.arange(5), y].mean().item(), rel=1e-5)


def test_weight_decay_goes_to_the_optimiser_only_without_sep_decay():
    model = nc.models.nets.build(_net())
    assert nc.train._optimizer(model, TrainConfig(weight_decay=0.1)).param_groups[0]["weight_decay"] == 0.1
    sep = nc.train._optimizer(model, TrainConfig(weight_decay=0.1, sep_decay=True, optimizer="adam"))
    assert sep.param_groups[0]["weight_decay"] == 0.0 and isinstance(sep, torch.optim.Adam)


def test_training_reaches_zero_error_and_records_every_head_layer(tmp_path):
    data = _toy()
    result = fit(data, _net(depth=2), QUICK, table=tmp_path / "t.csv")
    h = result.history
    assert list(h.columns) == ["epoch", "layer", "metric", "value"]
    assert set(h.layer) == {0, 1, 2} and h.epoch.max() == 6
    final = h[h.epoch == 6].set_index(["layer", "metric"]).value
    assert final[(0, "train_acc")] == 1.0
    nc1 = h[(h.metric == "nc1") & (h.layer == 1)].value.to_numpy()
    assert nc1[-1] < nc1[0]
    assert final[(0, "lr")] == pytest.approx(1e-3)  # StepLR: x0.1 after epoch 4
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), h, check_exact=False, rtol=1e-12)


def test_evaluate_accuracy_and_layer_metrics():
    data = _toy()
    torch.manual_seed(1)
    model = nc.models.nets.build(_net(depth=2)).eval()
    out = nc.train.evaluate(model, data, batch_size=5)
    with torch.no_grad():
        expected = (model(data.test.x).argmax(1) == data.test.y).float().mean().item()
    assert out[0]["test_acc"] == pytest.approx(expected)
    features = model.head_features(data.train.x)[1]
    # float32 features from batches of 5 and from one batch agree to round-off only.
    assert out[2]["nc1"] == pytest.approx(nc.metrics.nc1(features[1], data.train.y), rel=1e-5)


def test_class_norms_against_a_loop():
    data = _toy()
    torch.manual_seed(2)
    model = nc.models.nets.build(_net(depth=2)).eval()
    table = nc.train.class_norms(model, data.train, batch_size=7)
    with torch.no_grad():
        # The same batches of 7 as class_norms: a float32 forward pass over a different batch size
        # rounds differently (BLAS blocking), ~1e-7 relative, which is not what this test checks.
        h = torch.cat([model.backbone(xb) for xb in data.train.x.split(7)]).double().numpy()
        w = (model.head[1].weight @ model.head[0].weight).double().numpy()
    for k in range(3):
        mean = h[data.train.y.numpy() == k].mean(0)
        row = table.iloc[k]
        assert row["count"] == 12
        assert row["w_norm_sq"] == pytest.approx((w[k] ** 2).sum(), rel=1e-6)
        assert row["h_norm_sq"] == pytest.approx((mean**2).sum(), rel=1e-9)
        assert row["wh"] == pytest.approx(w[k] @ mean, rel=1e-6)


def _numpy(targets: list) -> list:
    return [SimpleNamespace(**{k: v.numpy() for k, v in vars(t).items()}) for t in targets]


def test_layer_gof_targets_reproduce_the_spec_numbers():
    # M = 1, ns = [40, 20, 10, 5], lambda = 0.03: the smallest class collapses.
    theory = nc.theory.mse_minimizer([40, 20, 10, 5], 1, lambda_W=0.03, lambda_H=0.03)
    shallow = _numpy(nc.train.layer_gof_targets(theory))
    assert np.allclose(shallow[0].classifier_sq, [4.07455532, 2.22213595, 0.91227766, 0], atol=1e-7)
    assert np.allclose(shallow[0].means_sq, [0.10186388, 0.1111068, 0.09122777, 0], atol=1e-7)
    assert np.allclose(shallow[0].inner, [0.64424376, 0.49688471, 0.28848753, 0], atol=1e-7)
    # Section 2.5, M = 3 with unequal lambdas: the same W_M..W_m Hbar_m diagonal at every layer, and
    # the layer grams scale by tau_k / lambda_W[j] per layer crossed.
    lam = (0.004, 0.008, 0.002)
    theory = nc.theory.mse_minimizer([40, 20, 10, 5], 3, lambda_W=lam, lambda_H=0.006)
    deep = _numpy(nc.train.layer_gof_targets(theory))
    tau = np.array([0.01101457, 0.00919253, 0.00762839, 0.00626251])
    for m, target in enumerate(deep):
        assert np.allclose(target.inner, [0.97890258, 0.96424994, 0.93907523, 0.89504731], atol=1e-7)
        ratio = np.prod([tau / lam[j] for j in range(m)], axis=0) if m else 1.0
        assert np.allclose(target.means_sq, deep[0].means_sq * ratio, rtol=1e-6)
        later = np.prod([tau / lam[j] for j in range(m, 3)], axis=0)
        assert np.allclose(target.classifier_sq, later, rtol=1e-6)
    with pytest.raises(ValueError, match="`minimizer` must be bias-free"):
        biased = nc.theory.mse_minimizer([5, 5], 1, lambda_W=0.01, lambda_H=0.01, bias=True)
        nc.train.layer_gof_targets(biased)


def test_gof_targets_are_used_per_layer():
    data = _toy()
    theory = nc.theory.mse_minimizer([12, 12, 12], 2, lambda_W=1e-3, lambda_H=1e-3)
    targets = nc.train.layer_gof_targets(theory)
    config = TrainConfig(epochs=1, batch_size=0, optimizer="adam")
    h = fit(data, _net(depth=2), config, gof=targets).history
    balanced = fit(data, _net(depth=2), config).history
    # Balanced counts: the GOF is the OF, so every GOF metric equals its OF twin.
    for frame in (h, balanced):
        final = frame.set_index(["layer", "metric"]).value
        assert final[(1, "nc2_gof_w")] == pytest.approx(final[(1, "nc2_of_w")], abs=1e-9)


def test_divergence_stops_with_a_clear_message(tmp_path):
    config = TrainConfig(epochs=3, batch_size=0, optimizer="sgd", lr=1e8, momentum=0.0)
    with pytest.raises(TrainingDiverged, match=r"training diverged in epoch 1: .* try a smaller `lr`"):
        fit(_toy(), _net(), config, checkpoint=tmp_path / "c.pt")
    with pytest.raises(TrainingDiverged, match=r"mean loss .* \(limit 1e-06\), finite weights: True"):
        fit(_toy(), _net(), TrainConfig(epochs=2, batch_size=0, max_loss=1e-6))


def test_checkpoint_is_weights_only_and_complete_runs_are_not_retrained(tmp_path):
    path = tmp_path / "run.pt"
    first = fit(_toy(), _net(), QUICK, checkpoint=path)
    state = checkpoints.read(path)
    assert state["epoch"] == 6 and {"model", "optimizer", "scheduler", "rng", "history"} <= set(state)
    again = fit(_toy(), _net(), QUICK, checkpoint=path)
    assert first.epochs_run == 6 and again.epochs_run == 0
    pd.testing.assert_frame_equal(first.history, again.history, check_exact=True)


def test_a_checkpoint_from_another_run_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    fit(_toy(), _net(), TrainConfig(epochs=1, batch_size=0), checkpoint=path)
    with pytest.raises(ValueError, match=r"written by a different run \(config differs in lr\)"):
        fit(_toy(), _net(), TrainConfig(epochs=1, batch_size=0, lr=0.5), checkpoint=path)
    with pytest.raises(ValueError, match=r"net differs in width"):
        fit(_toy(), _net(width=9), TrainConfig(epochs=1, batch_size=0), checkpoint=path)
    with pytest.raises(ValueError, match=r"data differs in checksum"):
        fit(_toy(seed=5), _net(), TrainConfig(epochs=1, batch_size=0), checkpoint=path)


RUNNER = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    import ncbook as nc
    import ncbook.train as train

    checkpoint, out, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
    if slow:  # widen the window between checkpoints so the test can kill mid-run
        save = train._save
        train._save = lambda *a, **k: (save(*a, **k), time.sleep(0.3))
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat_interleave(15)
    x = 3 * torch.randn(10, 64, generator=g)[y] + torch.randn(150, 64, generator=g)
    train_split = nc.data.Split(x, y, 10)
    data = nc.data.DataBundle("toy", train_split, nc.data.subset_by_counts(train_split, [5] * 10))
    net = nc.models.nets.NetConfig(input_shape=(64,), width=16, depth_relu=1, head_depth=2, bias=False)
    config = nc.train.TrainConfig(epochs=10, batch_size=32, optimizer="adam", lr=1e-2,
                                  sep_decay=True, lr_step=4, seed=3)
    result = nc.train.fit(data, net, config, checkpoint=checkpoint, table=out + ".csv")
    torch.save(result.model.state_dict(), out + ".pt")
    print("EPOCHS_RUN", result.epochs_run)
""")


def _start(script: Path, *args: str) -> subprocess.Popen:
    env = {"OMP_NUM_THREADS": "1", "NCBOOK_PROGRESS": "0", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_resume_after_kill_ends_with_identical_numbers(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    checkpoint = tmp_path / "killed.ckpt"
    # The uninterrupted reference runs alongside the run that gets killed.
    reference_run = _start(script, str(tmp_path / "ref.ckpt"), str(tmp_path / "ref"), "fast")
    proc = _start(script, str(checkpoint), str(tmp_path / "k"), "slow")
    deadline = time.monotonic() + 90
    epoch = 0
    while epoch < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if checkpoint.exists():
            epoch = checkpoints.read(checkpoint)["epoch"]
    proc.kill()
    _, stderr = proc.communicate()
    assert proc.returncode == -9, f"the run ended on its own before the kill: {stderr[-2000:]}"
    killed_at = checkpoints.read(checkpoint)["epoch"]
    assert 2 <= killed_at < 10

    out = _finish(_start(script, str(checkpoint), str(tmp_path / "resumed"), "fast"))
    _finish(reference_run)
    assert f"EPOCHS_RUN {10 - killed_at}" in out
    reference = pd.read_csv(tmp_path / "ref.csv")
    resumed = pd.read_csv(tmp_path / "resumed.csv")
    pd.testing.assert_frame_equal(reference, resumed, check_exact=True)
    ref_state = torch.load(tmp_path / "ref.pt", weights_only=True)
    res_state = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert ref_state.keys() == res_state.keys()
    assert all(torch.equal(ref_state[k], res_state[k]) for k in ref_state)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": 0}, r"`epochs` must be an integer >= 1, got 0"),
    ({"batch_size": -1}, r"`batch_size` must be an integer >= 0, got -1"),
    ({"optimizer": "lbfgs"}, r"`optimizer` must be one of 'sgd', 'adam'; got 'lbfgs'"),
    ({"lr": 0.0}, r"`lr` must be a number > 0.0, got 0.0"),
    ({"lr": math.nan}, r"`lr` must be a finite number"),
    ({"momentum": 1.5}, r"`momentum` must be a number in \[0.0, 1.0\], got 1.5"),
    ({"loss": "hinge"}, r"`loss` must be one of 'mse', 'ce'; got 'hinge'"),
    ({"mse_scale": 0}, r"`mse_scale` must be a number > 0.0"),
    ({"weight_decay": -1e-4}, r"`weight_decay` must be a number >= 0.0"),
    ({"feature_decay": -1.0}, r"`feature_decay` must be a number >= 0.0"),
    ({"sep_decay": "yes"}, r"`sep_decay` must be one of True, False"),
    ({"shuffle": 2}, r"`shuffle` must be one of True, False"),
    ({"lr_step": 0}, r"`lr_step` must be an integer >= 1"),
    ({"lr_gamma": 0.0}, r"`lr_gamma` must be a number in \(0.0, 1.0\]"),
    ({"eval_every": 0}, r"`eval_every` must be an integer >= 1"),
    ({"checkpoint_every": 0}, r"`checkpoint_every` must be an integer >= 1"),
    ({"eval_batch_size": 0}, r"`eval_batch_size` must be an integer >= 1"),
    ({"seed": -3}, r"`seed` must be an integer in \[0, "),
    ({"max_loss": 0.0}, r"`max_loss` must be a number > 0.0"),
])  # fmt: skip
def test_bad_train_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(("net", "kw", "message"), [
    (NetConfig(input_shape=(6,), num_classes=4), {}, r"`net.num_classes` is 4 but the data have 3"),
    (NetConfig(input_shape=(5,), num_classes=3), {}, r"`net.input_shape` is \(5,\), the data \(6,\)"),
    (_net(depth=2), {"gof": [None]}, r"`gof` needs one target per head layer \(2\), got 1"),
])  # fmt: skip
def test_fit_rejects_mismatched_inputs(net, kw, message):
    with pytest.raises(ValueError, match=message):
        fit(_toy(), net, TrainConfig(epochs=1), **kw)


def test_run_many_writes_tables_and_resumes_only_identical_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("NCBOOK_CHECKPOINTS", str(tmp_path / "ckpt"))
    config = TrainConfig(epochs=2, batch_size=0)
    runs = {"a": (_net(depth=1), config), "b": (_net(depth=2, bias=True), replace(config, loss="ce"))}
    history, models = nc.train.run_many(_toy(), runs, profile="smoke", notebook="nb")
    assert set(history.run) == {"a", "b"}
    assert list(history.columns[:5]) == ["run", "arch", "depth", "bias", "loss"]
    assert history.groupby("run").depth.first().to_dict() == {"a": 1, "b": 2}
    assert (tmp_path / "results" / "smoke" / "nb" / "a.csv").is_file() and models["b"].depth == 2
    # Same configs: the same checkpoint file; another learning rate: another file.
    first = nc.train.checkpoint_path("smoke", "nb", "a", _toy(), _net(depth=1), config)
    assert first.is_file() and first.parent == tmp_path / "ckpt" / "smoke" / "nb"
    other = nc.train.checkpoint_path("smoke", "nb", "a", _toy(), _net(depth=1), replace(config, lr=0.5))
    assert other != first and other.name.startswith("a-")
    again = nc.train.run(_toy(), _net(depth=1), config, profile="smoke", notebook="nb", name="a")
    assert again.epochs_run == 0
    with pytest.raises(ValueError, match="`profile` must be one of 'smoke', 'full'"):
        nc.train.checkpoint_path("big", "nb", "a", _toy(), _net(depth=1), config)


def test_authors_recipes_match_the_spec():
    # paper-a.md Section 5.3, commands (A), (B), (C).
    a, b, c = (nc.train.AUTHORS_RECIPES[k] for k in ("balanced_mlp", "balanced_conv", "imbalanced_mlp"))
    assert (a.optimizer, a.lr, a.sep_decay, a.weight_decay, a.feature_decay, a.batch_size) == (
        "adam", 1e-4, True, 1e-4, 1e-4, 128)
    assert (b.optimizer, b.lr, b.momentum, b.sep_decay, b.weight_decay) == ("sgd", 1e-3, 0.9, False, 1e-4)
    assert (c.epochs, c.lr_step, c.batch_size, c.shuffle, c.mse_scale, c.weight_decay) == (
        12000, 6000, 0, False, 0.5, 1e-5)
    assert all(r.epochs in (200, 12000) and r.lr_gamma == 0.1 and r.loss == "mse" for r in (a, b, c))


def test_evaluate_agrees_with_pre_hook_collection():
    # ncbook.metrics.collect taps the inputs of the head layers with forward pre-hooks, as the
    # authors' validation does; evaluate reads them from HeadedNet.head_features in one pass.
    data = _toy()
    torch.manual_seed(4)
    model = nc.models.nets.build(_net(depth=3))
    out = nc.train.evaluate(model, data, batch_size=8)
    loader = [(data.train.x[i : i + 8], data.train.y[i : i + 8]) for i in range(0, len(data.train), 8)]
    layers = {str(m + 1): layer for m, layer in enumerate(model.head)}
    accumulators = nc.metrics.collect(model, loader, layers, 3)
    classifiers = model.classifiers()
    for m in range(1, 4):
        expected = accumulators[str(m)].compute(classifiers[m - 1])
        for key, value in out[m].items():
            assert value == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (m, key)


# ------------------------------------------------------------------ damaged checkpoints (issue 15)


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flipped":  # one byte in the middle: tensor bytes, not the zip directory
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"not a checkpoint")


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage"])
def test_a_damaged_checkpoint_is_moved_aside_and_training_restarts(tmp_path, how):
    path = tmp_path / "run.pt"
    first = fit(_toy(), _net(), QUICK, checkpoint=path)
    _damage(path, how)
    with pytest.warns(RuntimeWarning, match=r"checkpoint .*run.pt cannot be used .*moved it to "
                                            r".*run.pt.corrupt and training restarts from epoch 0"):
        again = fit(_toy(), _net(), QUICK, checkpoint=path)
    assert again.epochs_run == 6 and (tmp_path / "run.pt.corrupt").is_file()
    pd.testing.assert_frame_equal(first.history, again.history, check_exact=True)
    assert checkpoints.read(path)["epoch"] == 6


def test_damaged_checkpoint_message_never_advises_unsafe_loading(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"PK\x03\x04 damaged zip")
    with pytest.raises(checkpoints.DamagedCheckpoint, match=r"bad.pt") as error:
        checkpoints.read(path)
    assert "weights_only=False" not in str(error.value)


def test_checkpoint_identity_includes_the_code_hash(monkeypatch):
    from ncbook import _runtime

    before = train.checkpoint_path("smoke", "nb", "run", _toy(), _net(), QUICK)
    monkeypatch.setattr(checkpoints, "code_hash", lambda: "changed code")
    after = train.checkpoint_path("smoke", "nb", "run", _toy(), _net(), QUICK)
    assert before != after and _runtime.code_hash() != "changed code"
