"""The papers' experimental protocols, each producing tidy tables: paper A's synthetic runs
(:mod:`~ncbook.experiments.synthetic`)."""

from ncbook.experiments import synthetic

__all__ = ["synthetic"]
