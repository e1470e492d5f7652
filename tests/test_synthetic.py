"""ncbook.experiments.synthetic: the run configuration, the metrics of a run (against hand-computed values),
the predictions (against the spec's numbers, paper-a.md Sections 2 and 4), short gradient-descent
runs against closed-form optima, and the result files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from reference import assert_matches_reference

import ncbook.experiments.synthetic as syn
from ncbook.models import DeepLinearUFM, classifier_tails, make_deep_linear_ufm

SQRT = math.sqrt


# ---------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_per_class": 100}, "`n_per_class` must be a sequence"),
        ({"n_per_class": (5,)}, "`n_per_class` needs at least 2 classes"),
        ({"n_per_class": (5, 0)}, r"`n_per_class\[1\]` must be an integer >= 1"),
        ({"depth": 0}, "`depth` must be an integer >= 1"),
        ({"bias": "yes"}, "`bias` must be one of"),
        ({"loss": "hinge"}, "`loss` must be one of"),
        ({"widths": 0}, "`widths` must be an integer >= 1"),
        ({"widths": (3, 3)}, "`widths` must be one integer"),
        ({"lambda_W": 0.0}, "`lambda_W` must be a number > 0"),
        ({"lambda_H": -1.0}, "`lambda_H` must be a number > 0"),
        ({"lr": 0}, "`lr` must be a number > 0"),
        ({"init_std": float("nan")}, "`init_std` must be a finite number"),
        ({"momentum": 1.5}, r"`momentum` must be a number in \[0.0, 1.0\]"),
        ({"steps": 0}, "`steps` must be an integer >= 1"),
        ({"log_every": 0}, "`log_every` must be an integer >= 1"),
        ({"seed": -1}, "`seed` must be an integer in"),
        ({"dtype": "float16"}, "`dtype` must be one of"),
    ],
)
def test_config_rejects_bad_fields(changes, message):
    with pytest.raises(ValueError, match=message):
        syn.SyntheticConfig(**changes)


def test_config_defaults_are_the_authors_recipe_and_names_differ_by_every_field():
    config = syn.SyntheticConfig()
    assert (config.n_per_class, config.widths, config.lambda_W, config.lambda_H) == ((100,) * 4, 64, 5e-4,
                                                                                    5e-4)
    assert (config.steps, config.lr, config.momentum, config.init_std, config.seed) == (30_000, 0.1, 0.9,
                                                                                        0.1, 2)
    assert config.name == syn.SyntheticConfig(n_per_class=[100, 100, 100, 100]).name
    assert config.name.startswith("mse-M1-nobias-n100-100-100-100-d64-s2-")
    assert config.name != syn.SyntheticConfig(steps=29_999).name
    assert config.name != syn.SyntheticConfig(dtype="float32").name
    assert config.columns()["criterion"] == "mse" and config.columns()["counts"] == "100-100-100-100"


def test_grid_crosses_fields_pairs_decays_and_drops_ce_with_bias():
    configs = syn.grid(depths=[1, 3], biases=[False, True], losses=["mse", "ce"], seeds=[0, 1], widths=8)
    assert len(configs) == 2 * 2 * 2 + 2 * 2  # CE keeps only the bias-free runs
    assert all(c.widths == 8 for c in configs)
    assert not any(c.loss == "ce" and c.bias for c in configs)
    paired = syn.grid(depths=[1, 2], decays=[0.035, 0.04], seeds=[5])
    got = [(c.depth, c.lambda_W, c.lambda_H, c.seed) for c in paired]
    assert got == [(1, 0.035, 0.035, 5), (2, 0.04, 0.04, 5)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depths": 3}, "`depths` must be a non-empty list, got 3"),
        ({"depths": []}, r"`depths` must be a non-empty list, got \[\]"),
        ({"depths": [1], "seeds": "0"}, "`seeds` must be a non-empty list, got .0."),
        ({"depths": [1, 2], "decays": [0.1]}, r"`decays` needs one value per depth \(2\), got 1"),
        ({"depths": [1], "losses": ["ce"], "biases": [True]}, "the grid is empty"),
    ],
)
def test_grid_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        syn.grid(**kwargs)


# ---------------------------------------------------------------------------------------- measure
def _model(weights, features, labels, bias=None) -> DeepLinearUFM:
    as64 = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return DeepLinearUFM(
        weights=[as64(w) for w in weights], features=as64(features),
        bias=None if bias is None else as64(bias), labels=torch.tensor(labels),
        lambda_W=(0.1,) * len(weights), lambda_H=0.1, loss="mse",
    )


def _measured(model, reference=None) -> dict[tuple[str, int, int], float]:
    """``measure`` as {(metric, layer, k): value}."""
    table = syn.split_class(syn.measure(model, reference))
    return {(m, int(layer), int(k)): v for m, layer, k, v in zip(table["metric"], table["layer"], table["k"],
                                                                  table["value"])}


def test_measure_on_a_hand_computed_example():
    # K = 2, d = 2, N = 4: class 0 at (1,0),(3,0), class 1 at (0,1),(0,3); W = diag(1, 2).
    model = _model([[[1.0, 0.0], [0.0, 2.0]]], [[1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 1.0, 3.0]], [0, 0, 1, 1])
    got = _measured(model)
    # Sigma_W = I/2 (per-coordinate variance 1 in the class's own axis, 2 of 4 samples), Sigma_B
    # around the mean (1,1) of means (2,0),(0,2): Tr(Sigma_W Sigma_B^+)/K = 0.125 (Papyan's NC1).
    assert got[("nc1", 1, -1)] == pytest.approx(0.125, rel=1e-12)
    # W W^T = diag(1, 4): ||diag(1,4)/sqrt(17) - I/sqrt(2)||_F.
    want = SQRT((1 / SQRT(17) - 1 / SQRT(2)) ** 2 + (4 / SQRT(17) - 1 / SQRT(2)) ** 2)
    assert got[("nc2_of_w", 1, -1)] == pytest.approx(want, rel=1e-12)
    assert got[("nc2_of", 1, -1)] == pytest.approx(0.0, abs=1e-15)  # means (2,0), (0,2)
    # W vs Hbar^T = 2 I: ||diag(1,2)/sqrt5 - I/sqrt2||_F.
    want = SQRT((1 / SQRT(5) - 1 / SQRT(2)) ** 2 + (2 / SQRT(5) - 1 / SQRT(2)) ** 2)
    assert got[("nc3_sub", 1, -1)] == pytest.approx(want, rel=1e-12)
    # Centred means (1,-1), (-1,1): Gram [[2,-2],[-2,2]] is the 2-class ETF.
    assert got[("nc2_etf", 1, -1)] == pytest.approx(0.0, abs=1e-15)
    assert [got[("w_norm_sq", 1, k)] for k in (0, 1)] == pytest.approx([1.0, 4.0])
    assert [got[("h_norm_sq", 1, k)] for k in (0, 1)] == pytest.approx([4.0, 4.0])
    assert [got[("wh", 1, k)] for k in (0, 1)] == pytest.approx([2.0, 4.0])
    assert [got[("sv", 1, k)] for k in (0, 1)] == pytest.approx([2.0, 1.0])
    assert ("nc2_pred_w", 1, -1) not in got and ("bias", 1, 0) not in got
    assert set(syn.measure(model)["layer"]) == {1} and "w_norm_sq[1]" in set(syn.measure(model)["metric"])


def test_measure_deep_layers_and_bias():
    # M = 2: W_1 = diag(1, 3) maps collapsed features e_1, e_2 to layer-2 means e_1, 3 e_2.
    model = _model([[[1.0, 0.0], [0.0, 3.0]], [[1.0, 0.0], [0.0, 1.0]]],
                   [[1.0, 0.0], [0.0, 1.0]], [0, 1], bias=[0.5, -0.5])
    got = _measured(model)
    assert got[("nc2_of", 1, -1)] == pytest.approx(0.0, abs=1e-15)
    want = SQRT((1 / SQRT(82) - 1 / SQRT(2)) ** 2 + (9 / SQRT(82) - 1 / SQRT(2)) ** 2)
    assert got[("nc2_of", 2, -1)] == pytest.approx(want, rel=1e-12)  # Gram diag(1, 9)
    assert got[("nc2_of_w", 2, -1)] == pytest.approx(0.0, abs=1e-15)  # W_2 = I
    assert got[("nc2_of_w", 1, -1)] == pytest.approx(want, rel=1e-12)  # (W_2 W_1)(W_2 W_1)^T = diag(1, 9)
    assert [got[("bias", 1, k)] for k in (0, 1)] == [0.5, -0.5]
    assert {key[1] for key in got if key[0] == "nc1"} == {1, 2}


def test_measure_gives_nan_at_the_all_zero_point():
    model = _model([np.zeros((2, 2))], np.zeros((2, 4)), [0, 0, 1, 1])
    got = _measured(model)
    assert math.isnan(got[("nc1", 1, -1)]) and math.isnan(got[("nc2_of_w", 1, -1)])
    assert math.isnan(got[("nc3_sub", 1, -1)]) and got[("w_norm_sq", 1, 0)] == 0.0


# ------------------------------------------------------------------------------------ predictions
def _prediction(frame: pd.DataFrame, metric: str, layer: int = 1, k: int = -1, candidate: str = "global"):
    row = frame.query("metric == @metric and layer == @layer and k == @k and candidate == @candidate")
    assert len(row) == 1, row
    return float(row["value"].iloc[0])


@pytest.mark.parametrize(
    ("depth", "w_of", "wh_of", "loss", "w_norm_sq"),
    [  # paper-a.md Section 4: regression values of the OF distance under imbalance and the theory table
        (1, 0.298736, 0.006115, 0.0189421356237, (13.94214, 9.8, 6.87107, 6.87107)),
        (3, 0.430704, 0.002986, 0.012218400372, (52.88268, 31.3223, 18.50221, 18.50221)),
        (6, 0.481773, 0.002115, 0.013220353373, (93.48034, 51.45141, 28.24929, 28.24929)),
    ],
)
def test_predictions_match_the_spec_for_the_authors_imbalanced_runs(depth, w_of, wh_of, loss, w_norm_sq):
    frame = syn.predictions([syn.SyntheticConfig(n_per_class=syn.IMBALANCED, depth=depth)])
    assert set(frame["candidate"]) == {"global"}
    assert _prediction(frame, "nc2_of_w") == pytest.approx(w_of, abs=1e-6)
    assert _prediction(frame, "nc3_of") == pytest.approx(wh_of, abs=1e-6)
    assert _prediction(frame, "loss", layer=0) == pytest.approx(loss, rel=1e-10)
    assert [_prediction(frame, "w_norm_sq", k=k) for k in range(4)] == pytest.approx(w_norm_sq, rel=1e-6)
    for metric in ("nc1", "nc2_pred_w", "nc2_pred", "nc3_pred_sub",
                   "nc3_pred"):  # the minimizer is its own GOF
        assert all(abs(_prediction(frame, metric, layer=m)) < 1e-12 for m in range(1, depth + 1))


def test_predictions_balanced_frames_bias_and_losses():
    free, bias = syn.SyntheticConfig(depth=3), syn.SyntheticConfig(depth=3, bias=True)
    frame = syn.predictions([free, bias])
    of_to_etf = SQRT(2 - 2 * SQRT(3 / 4))  # 0.517638: the OF and the ETF, both normalised
    by_run = {name: rows for name, rows in frame.groupby("run")}
    for m in (1, 2, 3):
        assert _prediction(by_run[free.name], "nc2_of_w", m) == pytest.approx(0.0, abs=1e-12)
        assert _prediction(by_run[free.name], "nc2_etf_w", m) == pytest.approx(of_to_etf, rel=1e-10)
        assert _prediction(by_run[bias.name], "nc2_etf_w", m) == pytest.approx(0.0, abs=1e-12)
        assert _prediction(by_run[bias.name], "nc2_etf", m) == pytest.approx(0.0, abs=1e-12)
        assert _prediction(by_run[bias.name], "nc2_of_w", m) == pytest.approx(of_to_etf, rel=1e-10)
    assert _prediction(by_run[free.name], "loss", 0) == pytest.approx(0.0126290469918, rel=1e-10)
    assert _prediction(by_run[bias.name], "loss", 0) == pytest.approx(0.00947178524383, rel=1e-10)
    assert [_prediction(by_run[bias.name], "bias", 1, k) for k in range(4)] == pytest.approx([0.25] * 4)
    assert _prediction(by_run[free.name], "w_norm_sq", 1, 0) == pytest.approx(31.3223, rel=1e-5)


def test_candidates_name_the_code_rule_and_the_ce_geometries():
    window = syn.SyntheticConfig(n_per_class=(40, 20, 10, 5), depth=2, lambda_W=0.04, lambda_H=0.04)
    found = syn.candidates(window)
    assert set(found) == {"global", "code"}  # Section 2.5: 0.4190671084 (global) vs 0.4216311318
    assert found["global"].loss == pytest.approx(0.4190671084, rel=1e-9)
    assert found["code"].loss == pytest.approx(0.4216311318, rel=1e-9)
    assert set(syn.candidates(syn.SyntheticConfig(depth=2))) == {"global"}
    ce = syn.candidates(syn.SyntheticConfig(n_per_class=(10,) * 4, depth=3, loss="ce", lambda_W=1e-3,
                                            lambda_H=1e-3))
    assert ce["etf"].loss == pytest.approx(0.0308518264, rel=1e-8)  # Section 2.3 table
    assert ce["orthoplex"].loss == pytest.approx(0.0284359616, rel=1e-8)
    assert set(syn.candidates(syn.SyntheticConfig(n_per_class=(10,) * 3, loss="ce"))) == {"etf"}
    assert syn.candidates(syn.SyntheticConfig(n_per_class=(20, 10), loss="ce")) == {}


# ------------------------------------------------------------------------------ gradient descent
def test_a_balanced_run_reaches_the_spec_optimum():
    # Section 2.1 check: K = 4, n = 20, lambda = 0.01, M = 1: f* = 0.1628854382, ||w||^2 = 3.67213595.
    config = syn.SyntheticConfig(n_per_class=(20,) * 4, depth=1, widths=8, lambda_W=0.01, lambda_H=0.01,
                                 lr=0.5, steps=300, log_every=100, seed=0)
    trace = syn.run(config)
    table = trace.table
    assert set(table["step"]) == {0, 100, 200, 300} and trace.steps == 300 and trace.method == "sgd"
    assert list(table.columns) == ["step", "layer", "metric", "value"]
    end = syn.split_class(table[table["step"] == 300])
    loss = end.query("metric == 'loss'")["value"]
    assert float(loss.iloc[0]) == pytest.approx(0.1628854382, rel=1e-9) == pytest.approx(trace.final_loss)
    assert end.query("metric == 'w_norm_sq'")["value"].to_numpy() == pytest.approx([3.67213595] * 4, rel=1e-5)
    assert float(end.query("metric == 'nc1'")["value"].iloc[0]) < 1e-12
    losses = table.query("metric == 'loss'").sort_values("step")["value"].to_numpy()
    assert np.all(np.diff(losses) < 0)
    timeless = lambda t: t.query("metric != 'seconds'").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(timeless(table), timeless(syn.run(config).table))  # bit-reproducible on CPU


def test_a_float32_run_reaches_the_optimum_to_single_precision():
    config = syn.SyntheticConfig(n_per_class=(20,) * 4, depth=1, widths=8, lambda_W=0.01, lambda_H=0.01,
                                 lr=0.5, steps=300, log_every=300, seed=0, dtype="float32")
    loss = float(syn.run(config).table.query("metric == 'loss' and step == 300")["value"].iloc[0])
    assert loss == pytest.approx(0.1628854382, rel=1e-5)  # Section 2.1 check, as above


def test_a_minority_run_reaches_the_global_minimum_not_the_code_rule_point():
    # Section 2.5, M = 2, lambda = 0.04: class 2 vanishes at the global minimum (f* = 0.4190671084);
    # the authors' rule keeps it (0.4216311318, a strict local minimum).
    config = syn.SyntheticConfig(n_per_class=(40, 20, 10, 5), depth=2, widths=8, lambda_W=0.04, lambda_H=0.04,
                                 init_std=0.3, steps=600, log_every=600, seed=0)
    table = syn.split_class(syn.run(config).table)
    outcome = syn.closest_candidate(table.assign(**config.columns()), syn.predictions([config]))
    assert list(outcome["candidate"]) == ["global"]
    assert float(outcome["loss"].iloc[0]) == pytest.approx(0.4190671084, rel=1e-9)
    end = table[table["step"] == 600].query("metric == 'w_norm_sq'")["value"].to_numpy()
    assert end[0] == pytest.approx(7.44825005, rel=1e-8) and np.all(end[1:] < 1e-12)


# ------------------------------------------------------------------------------------ result files
def test_run_all_writes_then_reuses_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path))
    configs = syn.grid(depths=[1, 2], n_per_class=(3, 3), widths=3, steps=4, log_every=2, seeds=[0])
    first = syn.run_all(configs, "smoke", "test_nb")
    folder = tmp_path / "smoke" / "test_nb"
    for config in configs:
        meta = json.loads((folder / f"{config.name}.json").read_text())
        assert meta["config"]["depth"] == config.depth and meta["wall_seconds"] > 0
        assert (folder / f"{config.name}.csv").is_file()
    assert set(first["run"]) == {c.name for c in configs} and set(first["depth"]) == {1, 2}

    def refuse(*args, **kwargs):
        raise AssertionError("run_all re-ran a run whose CSV exists")

    monkeypatch.setattr(syn, "run", refuse)
    again = syn.run_all(configs, "smoke", "test_nb")
    pd.testing.assert_frame_equal(first, again)
    assert meta["code"] == syn.code_digest()
    loss = first.query("metric == 'loss' and step == 4 and depth == 1")["value"].iloc[0]
    assert loss == syn.final(first).query("metric == 'loss' and depth == 1")["value"].iloc[0]


def test_run_all_recomputes_when_the_code_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path))
    configs = syn.grid(depths=[1], n_per_class=(3, 3), widths=3, steps=2, log_every=2, seeds=[0])
    syn.run_all(configs, "smoke", "test_nb")
    calls = []
    real = syn.run
    monkeypatch.setattr(syn, "run", lambda *args: calls.append(args) or real(*args))
    syn.run_all(configs, "smoke", "test_nb")
    assert calls == []  # same code: the file is reused
    monkeypatch.setattr(syn, "code_digest", lambda: "another version of the code")
    syn.run_all(configs, "smoke", "test_nb")
    assert len(calls) == 1  # a stale file is never reused
    meta = tmp_path / "smoke" / "test_nb" / f"{configs[0].name}.json"
    assert json.loads(meta.read_text())["code"] == "another version of the code"
    meta.write_text("{not json")
    syn.run_all(configs, "smoke", "test_nb")
    assert len(calls) == 2  # an unreadable record counts as stale


def test_code_digest_follows_every_source_file(monkeypatch):
    import ncbook._runtime as runtime

    before = syn.code_digest()
    assert before == syn.code_digest() and len(before) == 40
    digests = runtime.source_digests()
    # A change in a module no run names directly (a model's base class) still invalidates the cache.
    changed = digests | {"models/_free_features.py": "0" * 64}
    monkeypatch.setattr(runtime, "source_digests", lambda: changed)
    assert syn.code_digest() != before


def _table(runs: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"run": run, "step": step, "metric": "loss", "layer": 0, "k": -1, "value": value}
        for run, values in runs.items()
        for step, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def _predicted(losses: dict[str, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([
        {"run": run, "candidate": name, "metric": "loss", "layer": 0, "k": -1, "value": value}
        for run, found in losses.items()
        for name, value in found.items()
    ])


def test_final_attach_and_closest_candidate():
    table = _table({"a": [3.0, 2.0, 1.05], "b": [3.0, 2.5]})
    predicted = _predicted({"a": {"etf": 1.0, "orthoplex": 0.5}, "b": {"etf": 2.0, "orthoplex": 2.4}})
    assert syn.final(table)["value"].tolist() == [1.05, 2.5]
    attached = syn.attach(syn.final(table), predicted, "etf")
    assert attached["predicted"].tolist() == [1.0, 2.0]
    outcome = syn.closest_candidate(table, predicted).set_index("run")
    assert outcome["candidate"].to_dict() == {"a": "etf", "b": "orthoplex"}
    assert outcome.loc["a", "gap"] == pytest.approx(0.05) and outcome.loc["b", "orthoplex"] == 2.4
    chosen = syn.attach(syn.final(table), predicted, outcome["candidate"])
    assert chosen["predicted"].tolist() == [1.0, 2.4]


def test_attach_and_closest_candidate_reject_other_frames():
    with pytest.raises(ValueError, match=r"`table` lacks the column\(s\) \['layer', 'k'\]"):
        syn.attach(pd.DataFrame(columns=["run", "metric"]), _predicted({}))
    with pytest.raises(ValueError, match=r"`predicted` lacks the column\(s\)"):
        syn.closest_candidate(_table({"a": [1.0]}), pd.DataFrame(columns=["run"]))


def test_measure_matches_the_brute_force_reference():
    config = syn.SyntheticConfig(n_per_class=(5, 4, 3), depth=2, widths=5, lambda_W=0.01, lambda_H=0.01)
    model = make_deep_linear_ufm(config.spec, init_std=0.6, seed=1)
    reference = syn.mse_minimizer((5, 4, 3), 2, lambda_W=0.01, lambda_H=0.01, widths=5)
    with torch.no_grad():
        features = [h.T.numpy() for h in model.layer_features()]
        tails = [t.numpy() for t in classifier_tails(model.weights)]
    compared = assert_matches_reference(syn.measure(model, reference), features, model.labels.numpy(), 3,
                                        tails, reference)
    assert compared == 2 * 12  # the 8 LAYER_METRICS and the 4 PRED_KEYS per layer
