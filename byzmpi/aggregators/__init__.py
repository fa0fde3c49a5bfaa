"""Robust aggregation rules and pre-aggregators: pure functions on an (m, d) tensor, each with its
validity condition, composed by :class:`Pipeline`."""

from . import krum as _krum, mean as _mean, median as _median, trimmed_mean as _trimmed_mean  # noqa: F401  (register)
from .distances import pairwise_sq_distances
from .krum import krum, krum_scores, krum_select, multi_krum
from .mean import mean
from .median import coordinate_median
from .pipeline import Pipeline
from .registry import (
    PRE_AGGREGATORS, RULES, Aggregate, PreAggregated, PreAggregator, Rule, register_pre_aggregator, register_rule,
)
from .trimmed_mean import trimmed_mean

__all__ = [
    "RULES", "PRE_AGGREGATORS", "Aggregate", "PreAggregated", "PreAggregator", "Rule", "Pipeline",
    "register_rule", "register_pre_aggregator", "pairwise_sq_distances",
    "mean", "coordinate_median", "trimmed_mean", "krum", "krum_scores", "krum_select", "multi_krum",
]
