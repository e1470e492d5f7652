"""Models: the deep linear UFM of paper A (:mod:`~ncbook.models.linear_ufm`), the ReLU deep UFM
of paper B (:mod:`~ncbook.models.relu_dufm`, its explicit DNC/SRG points
:mod:`~ncbook.models.dufm_points`, its gradient-descent kernel :mod:`~ncbook.models.relu_dufm_gd`,
a ReLU network on real data :mod:`~ncbook.models.relu_head`) and the backbones with a deep linear
head used on real data (:mod:`~ncbook.models.nets`)."""

from ncbook.models import nets
from ncbook.models.dufm_points import *  # noqa: F403
from ncbook.models.dufm_points import __all__ as _points_all
from ncbook.models.linear_ufm import *  # noqa: F403
from ncbook.models.linear_ufm import __all__ as _linear_all
from ncbook.models.relu_dufm import *  # noqa: F403
from ncbook.models.relu_dufm import __all__ as _relu_all
from ncbook.models.relu_head import *  # noqa: F403
from ncbook.models.relu_head import __all__ as _head_all

__all__ = ["nets", *_linear_all, *_relu_all, *_points_all, *_head_all]
