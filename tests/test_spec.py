from __future__ import annotations

import pytest

from ncbook.spec import UFMSpec


def test_defaults_and_broadcasting():
    spec = UFMSpec([3, 3, 3], 2)
    assert spec.widths == (3, 3) and spec.lambda_W == (5e-4, 5e-4) and spec.n_per_class == (3, 3, 3)
    assert spec.dims == (3, 3, 3) and spec.balanced and spec.num_samples == 9
    wide = UFMSpec((4, 2), 3, (5, 6, 7), lambda_W=[0.1, 0.2, 0.3], lambda_H=0.4, bias=True)
    assert wide.dims == (5, 6, 7, 2) and wide.rank_limit == 2 and not wide.balanced
    assert wide.with_decay(2.0).lambda_W == (0.2, 0.4, 0.6) and wide.with_decay(2.0).lambda_H == 0.8
    assert wide.describe()["lambda_W"] == "0.1-0.2-0.3" and spec.describe()["lambda_W"] == 5e-4


def test_lambdas_are_keyword_only():
    with pytest.raises(TypeError):
        UFMSpec((2, 2), 1, 2, 0.1)


def test_spec_is_frozen_and_hashable():
    spec = UFMSpec((2, 2), 1)
    assert hash(spec) == hash(UFMSpec([2, 2], 1, [2]))
    with pytest.raises(AttributeError):
        spec.depth = 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_per_class": 5}, "`n_per_class` must be a sequence of class sizes"),
        ({"n_per_class": (5,)}, "`n_per_class` needs at least 2 classes"),
        ({"n_per_class": (5, 0)}, r"`n_per_class\[1\]` must be an integer >= 1"),
        ({"depth": 0}, "`depth` must be an integer >= 1"),
        ({"widths": (3, 3)}, r"`widths` needs one entry per layer \(1\)"),
        ({"widths": 0}, "`widths` must be an integer >= 1"),
        ({"lambda_W": -1.0}, "`lambda_W` must be a number >= 0.0"),
        ({"lambda_W": (1.0, 2.0)}, "`lambda_W` must be a number or 1 numbers"),
        ({"lambda_H": float("nan")}, "`lambda_H` must be a finite number"),
        ({"bias": "yes"}, "`bias` must be one of"),
        ({"loss": "hinge"}, "`loss` must be one of 'mse', 'ce'"),
        ({"activation": "tanh"}, "`activation` must be one of 'linear', 'relu'"),
        ({"nonnegative_features": True}, "needs activation='relu'"),
    ],
)
def test_bad_input(kwargs, message):
    args = {"n_per_class": (2, 2), "depth": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        UFMSpec(**args)


def test_positive_decay_and_factor_checks():
    with pytest.raises(ValueError, match=r"`lambda_W\[0\]` must be a number > 0.0"):
        UFMSpec((2, 2), 1, lambda_W=0.0).require_positive_decay()
    with pytest.raises(ValueError, match="`lambda_H` must be a number > 0.0"):
        UFMSpec((2, 2), 1, lambda_H=0.0).require_positive_decay()
    with pytest.raises(ValueError, match="`factor` must be a number > 0.0"):
        UFMSpec((2, 2), 1).with_decay(0)
    assert UFMSpec((2, 2), 1, activation="relu", nonnegative_features=True).nonnegative_features
