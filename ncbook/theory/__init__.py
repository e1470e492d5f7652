"""Closed-form predictions: global minimizers of the deep linear UFM (paper A) and the DNC versus
low-rank comparison for the ReLU deep UFM (paper B)."""

from ncbook.theory.linear import *  # noqa: F403
from ncbook.theory.linear import __all__ as _linear_all
from ncbook.theory.relu import *  # noqa: F403
from ncbook.theory.relu import __all__ as _relu_all
from ncbook.theory.relu_srg import *  # noqa: F403
from ncbook.theory.relu_srg import __all__ as _srg_all

__all__ = [*_linear_all, *_relu_all, *_srg_all]
