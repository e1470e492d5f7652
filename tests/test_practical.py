"""ncbook.experiments.practical: run grids, training sets, frame checks (chapters 23 and 24)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ncbook.data import DataBundle, Split
from ncbook.experiments import practical
from ncbook.models.nets import NetConfig
from ncbook.theory import mse_minimizer
from ncbook.train import TrainConfig

K = 4


class FixedNet(torch.nn.Module):
    """A 'trained' net whose backbone passes the inputs through and whose head is the matrix ``w``."""

    def __init__(self, w: torch.Tensor, depth: int = 1) -> None:
        super().__init__()
        self.w, self.depth, self.backbone = w, depth, torch.nn.Identity()

    def classifiers(self) -> list[torch.Tensor]:
        return [self.w]


def _bundle(per_class: list[int]) -> DataBundle:
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(per_class)])
    x = torch.nn.functional.one_hot(y, len(per_class)).float()
    return DataBundle("digits", Split(x, y, len(per_class)), Split(x, y, len(per_class)))


def _history(run: str, bias: bool, depth: int, values: dict[str, float]) -> pd.DataFrame:
    rows = [{"run": run, "epoch": epoch, "loss": "mse", "bias": bias, "depth": depth, "layer": layer,
             "metric": metric, "value": value * (10 if epoch == 0 else 1)}
            for epoch in (0, 5) for layer in range(1, depth + 1) for metric, value in values.items()]
    return pd.DataFrame(rows)


def test_frame_separation_is_the_closed_form():
    assert practical.frame_separation(10) == pytest.approx(math.sqrt(2 - 2 * math.sqrt(0.9)), abs=1e-12)
    with pytest.raises(ValueError, match="`num_classes` must be an integer >= 2"):
        practical.frame_separation(1)


def test_own_frame_follows_the_bias():
    assert (practical.own_frame(True), practical.own_frame(False)) == ("etf", "of")
    with pytest.raises(ValueError, match="`bias` must be one of"):
        practical.own_frame("yes")


def test_balanced_runs_mlp_grid_and_the_authors_conv_runs():
    mlp = practical.balanced_runs(NetConfig(), TrainConfig(), depths=[1, 3], losses=["mse", "ce"])
    assert sorted(mlp) == ["mlp_M1_bias_ce", "mlp_M1_bias_mse", "mlp_M1_nobias_mse", "mlp_M3_bias_ce",
                           "mlp_M3_bias_mse", "mlp_M3_nobias_mse"]
    net, config = mlp["mlp_M3_nobias_mse"]
    assert (net.head_depth, net.bias, config.loss) == (3, False, "mse")
    conv = practical.balanced_runs(NetConfig(arch="vgg16"), TrainConfig(), depths=[1, 6],
                                   losses=["mse", "ce"])
    assert sorted(conv) == ["vgg16_M1_bias_mse", "vgg16_M6_bias_mse"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"depths": 3, "losses": ["mse"]}, r"`depths` must be a non-empty list, got 3"),
    ({"depths": [], "losses": ["mse"]}, r"`depths` must be a non-empty list, got \[\]"),
    ({"depths": [0], "losses": ["mse"]}, r"`depths\[0\]` must be an integer >= 1"),
    ({"depths": [1], "losses": "mse"}, r"`losses` must be a non-empty list, got 'mse'"),
    ({"depths": [1], "losses": ["hinge"]}, r"`losses\[0\]` must be one of"),
])
def test_balanced_runs_reject_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        practical.balanced_runs(NetConfig(), TrainConfig(), **kwargs)


def test_conv_backbones_have_no_cross_entropy_runs():
    with pytest.raises(ValueError, match=r"gives no resnet18 run: the authors trained it with 'mse'"):
        practical.balanced_runs(NetConfig(arch="resnet18"), TrainConfig(), depths=[1], losses=["ce"])


def test_imbalanced_runs_are_bias_free_mse():
    runs = practical.imbalanced_runs(NetConfig(bias=True), TrainConfig(loss="ce"), depths=[1, 6])
    assert {name: (net.head_depth, net.bias, cfg.loss) for name, (net, cfg) in runs.items()} == {
        "mlp_M1": (1, False, "mse"), "mlp_M6": (6, False, "mse")}
    with pytest.raises(ValueError, match=r"`depths` must be a non-empty list"):
        practical.imbalanced_runs(NetConfig(), TrainConfig(), depths=1)


def test_training_sets_take_the_first_samples_of_each_class():
    data = _bundle([5, 7, 6])
    assert practical.balanced_training_set(data, 4).train.counts() == [4, 4, 4]
    assert practical.balanced_training_set(data, 0).train.counts() == [5, 7, 6]
    assert practical.imbalanced_training_set(data, [1, 2, 3]).train.counts() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"`n_per_class` = 6 exceeds the smallest class of digits \(5"):
        practical.balanced_training_set(data, 6)
    with pytest.raises(ValueError, match=r"`n_per_class` must be an integer >= 0"):
        practical.balanced_training_set(data, -1)
    with pytest.raises(ValueError, match=r"`counts` needs 3 entries for digits, got 2"):
        practical.imbalanced_training_set(data, [1, 2])
    with pytest.raises(ValueError, match=r"`counts` must be a non-empty list"):
        practical.imbalanced_training_set(data, 3)
    with pytest.raises(ValueError, match=r"`counts\[1\]` must be an integer >= 1"):
        practical.imbalanced_training_set(data, [1, 0, 2])


def test_frame_margins_tell_the_orthogonal_frame_from_the_etf():
    data = _bundle([3] * K)
    centring = torch.eye(K) - torch.ones(K, K) / K
    models = {"of": FixedNet(torch.eye(K, dtype=torch.float64)), "etf": FixedNet(centring.double())}
    etf_data = DataBundle("digits", Split(data.train.x @ centring, data.train.y, K), data.test)
    history = pd.concat([_history("of", False, 2, {"nc2_of_w": 1e-3, "nc2_of": 2e-3, "nc3_of": 3e-3}),
                         _history("etf", True, 2, {"nc2_etf_w": 4e-3, "nc2_etf": 5e-3, "nc3_etf": 6e-3})])
    of_row = practical.frame_margins(history[history.run == "of"], models, data.train).iloc[0]
    etf_row = practical.frame_margins(history[history.run == "etf"], models, etf_data.train).iloc[0]
    separation = practical.frame_separation(K)
    assert (of_row.frame, etf_row.frame) == ("OF", "ETF")
    for row in (of_row, etf_row):
        assert row.w_own == pytest.approx(0, abs=1e-12) and row.h_own == pytest.approx(0, abs=1e-6)
        assert row.w_other == pytest.approx(separation) and row.h_other == pytest.approx(separation, abs=1e-6)
        assert row.margin == pytest.approx(separation / 2)
    assert (of_row.w_own_max, of_row.h_own_max, of_row.nc3_own_max) == pytest.approx((1e-3, 2e-3, 3e-3))
    assert (etf_row.w_own_max, etf_row.h_own_max, etf_row.nc3_own_max) == pytest.approx((4e-3, 5e-3, 6e-3))


def test_centred_ranks_count_the_etf_as_k_minus_one():
    nets = {"etf": FixedNet(torch.eye(K)), "rank2": FixedNet(torch.eye(K)[:, :2])}
    ranks = practical.centred_ranks(nets, 0.1)
    assert ranks.to_dict() == {"etf": K - 1, "rank2": 2}


def test_imbalanced_theory_reads_the_lambdas_both_ways():
    theory = practical.imbalanced_theory([4, 2, 1], [1, 2], weight_decay=1e-3, feature_decay=2e-3, width=8)
    assert sorted(theory) == [(1, "K-scaled"), (1, "raw"), (2, "K-scaled"), (2, "raw")]
    scaled = mse_minimizer([4, 2, 1], 2, lambda_W=3e-3, lambda_H=6e-3, widths=8)
    assert theory[(2, "K-scaled")].loss == pytest.approx(scaled.loss, rel=1e-12)
    assert theory[(2, "raw")].loss == pytest.approx(mse_minimizer([4, 2, 1], 2, lambda_W=1e-3, lambda_H=2e-3,
                                                                         widths=8).loss)


def test_class_norm_table_measures_rows_and_means():
    data = _bundle([2, 1, 1])
    w = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    theory = practical.imbalanced_theory([2, 1, 1], [1], weight_decay=1e-3, feature_decay=1e-3, width=3)
    table = practical.class_norm_table({"mlp_M1": FixedNet(w)}, data.train, theory)
    assert table.w_norm_sq.tolist() == [1.0, 4.0, 9.0] and table.h_norm_sq.tolist() == [1.0, 1.0, 1.0]
    assert table.wh.tolist() == [1.0, 2.0, 3.0] and table["count"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(table["w_pred_raw"], theory[(1, "raw")].w_norm_sq)


def test_gof_summary_reads_the_last_epoch():
    theory = practical.imbalanced_theory([4, 2, 1], [2], weight_decay=1e-3, feature_decay=1e-3, width=4)
    history = _history("mlp_M2", False, 2, {"nc1": 1e-4, "nc2_gof_w": 2e-3, "nc2_gof": 1e-3, "nc3_gof": 5e-4,
                                             "nc2_of_w": 0.3})
    accuracy = {"run": "mlp_M2", "epoch": 5, "loss": "mse", "bias": False, "depth": 2, "layer": 0,
                "metric": "train_acc", "value": 1.0}
    history = pd.concat([history, pd.DataFrame([accuracy])])
    row = practical.gof_summary(history, theory).iloc[0]
    measured = (row.train_acc, row.nc1_max, row.gof_max, row.w_gof, row.w_of)
    assert measured == pytest.approx((1, 1e-4, 2e-3, 2e-3, 0.3))
    lengths = theory[(2, "K-scaled")].w_norm_sq
    expected = np.linalg.norm(np.diag(lengths) / np.linalg.norm(lengths) - np.eye(3) / 3**0.5)
    assert row.of_pred == pytest.approx(expected)
    assert row.margin == pytest.approx(row.of_pred / 2)
    with pytest.raises(ValueError, match="`convention` must be one of"):
        practical.gof_summary(history, theory, convention="halved")
