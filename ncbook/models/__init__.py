"""Models: the deep linear UFM of paper A (:mod:`~ncbook.models.linear_ufm`), the ReLU deep UFM
of paper B (:mod:`~ncbook.models.relu_dufm`) and the backbones with a deep linear head used on real
data (:mod:`~ncbook.models.nets`)."""

from ncbook.models import nets
from ncbook.models.linear_ufm import *  # noqa: F403
from ncbook.models.linear_ufm import __all__ as _linear_all
from ncbook.models.relu_dufm import *  # noqa: F403
from ncbook.models.relu_dufm import __all__ as _relu_all

__all__ = ["nets", *_linear_all, *_relu_all]
