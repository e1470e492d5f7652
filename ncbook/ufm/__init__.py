"""Unconstrained-feature models: the deep linear UFM of paper A and the ReLU deep UFM of paper B,
their objectives, and the solvers they share."""

from ncbook.ufm.linear import *  # noqa: F403
from ncbook.ufm.linear import __all__ as _linear_all
from ncbook.ufm.relu import *  # noqa: F403
from ncbook.ufm.relu import __all__ as _relu_all
from ncbook.ufm.solvers import METHODS, SolverConfig, minimize

__all__ = ["METHODS", "SolverConfig", "minimize", *_linear_all, *_relu_all]
