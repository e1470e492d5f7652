"""The papers' experimental protocols, each producing tidy tables: paper A's synthetic runs
(:mod:`~ncbook.experiments.synthetic`, tables in :mod:`~ncbook.experiments.synthetic_tables`)."""

from ncbook.experiments import synthetic

__all__ = ["synthetic"]
