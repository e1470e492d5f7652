"""The papers' experimental protocols, each producing tidy tables: paper A's synthetic runs
(:mod:`~ncbook.experiments.synthetic`, tables in :mod:`~ncbook.experiments.synthetic_tables`) and
paper B's DUFM runs (:mod:`~ncbook.experiments.dufm`)."""

from ncbook.experiments import dufm, synthetic

__all__ = ["dufm", "synthetic"]
