"""Models: the deep linear UFM of paper A (:mod:`~ncbook.models.linear_ufm`, solved by
:mod:`~ncbook.models.linear_solve`, read by :mod:`~ncbook.models.linear_snapshot`), the ReLU deep
UFM of paper B (:mod:`~ncbook.models.relu_dufm`, its explicit DNC/SRG points
:mod:`~ncbook.models.dufm_points`, its gradient-descent kernel :mod:`~ncbook.models.relu_dufm_gd`,
a ReLU network on real data :mod:`~ncbook.models.relu_head`) and the backbones with a deep linear
head used on real data (:mod:`~ncbook.models.nets`). ``UFMSpec`` (:mod:`ncbook.spec`) is
re-exported here."""

from ncbook.models import nets
from ncbook.models.dufm_points import *  # noqa: F403
from ncbook.models.dufm_points import __all__ as _points_all
from ncbook.models.linear_snapshot import *  # noqa: F403
from ncbook.models.linear_snapshot import __all__ as _snapshot_all
from ncbook.models.linear_solve import *  # noqa: F403
from ncbook.models.linear_solve import __all__ as _solve_all
from ncbook.models.linear_ufm import *  # noqa: F403
from ncbook.models.linear_ufm import __all__ as _linear_all
from ncbook.models.relu_dufm import *  # noqa: F403
from ncbook.models.relu_dufm import __all__ as _relu_all
from ncbook.models.relu_head import *  # noqa: F403
from ncbook.models.relu_head import __all__ as _head_all
from ncbook.spec import UFMSpec

__all__ = ["UFMSpec", "nets", *_linear_all, *_solve_all, *_snapshot_all, *_relu_all, *_points_all, *_head_all]
