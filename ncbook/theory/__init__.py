"""Closed-form predictions: global minimizers of the deep linear UFM (paper A: MSE in
:mod:`~ncbook.theory.linear_mse`, CE in :mod:`~ncbook.theory.linear_ce`, explicit points in
:mod:`~ncbook.theory.linear_point`) and the DNC versus low-rank comparison for the ReLU deep UFM
(paper B, :mod:`~ncbook.theory.relu` and :mod:`~ncbook.theory.relu_srg`); the phase maps over
these closed forms are in :mod:`~ncbook.theory.phase`."""

from ncbook.theory.linear_ce import *  # noqa: F403
from ncbook.theory.linear_ce import __all__ as _ce_all
from ncbook.theory.linear_mse import *  # noqa: F403
from ncbook.theory.linear_mse import __all__ as _mse_all
from ncbook.theory.linear_point import *  # noqa: F403
from ncbook.theory.linear_point import __all__ as _point_all
from ncbook.theory.relu import *  # noqa: F403
from ncbook.theory.relu import __all__ as _relu_all
from ncbook.theory.relu_srg import *  # noqa: F403
from ncbook.theory.relu_srg import __all__ as _srg_all

__all__ = [*_mse_all, *_ce_all, *_point_all, *_relu_all, *_srg_all]
