"""Robust aggregation rules and pre-aggregators: pure functions on an (m, d) tensor, each with its
validity condition, composed by :class:`Pipeline`.

Importing this package registers every rule and pre-aggregator below; it compiles nothing (the
sorting-network kernels of :mod:`.sorting` are compiled on first use with a large input).
"""

# rules (import order = catalogue order)
from . import mean as _mean, median as _median, trimmed_mean as _trimmed_mean, meamed as _meamed  # noqa: F401
from . import krum as _krum, geometric_median as _gm, centered_clipping as _cc  # noqa: F401
from . import monna as _monna, mda as _mda, bulyan as _bulyan, caf as _caf  # noqa: F401

# pre-aggregators
from . import bucketing as _bucketing, nnm as _nnm, clipping as _clipping, arc as _arc  # noqa: F401

from .arc import arc, arc_count
from .bucketing import bucketing, bucketing_shape
from .bulyan import bulyan, bulyan_select
from .caf import caf
from .centered_clipping import centered_clipping
from .clipping import clip_to_radius, static_clipping
from .distances import accurate_gram, gram, pairwise_sq_distances
from .geometric_median import geometric_median
from .krum import krum, krum_scores, krum_select, multi_krum
from .mda import mda
from .meamed import mean_around_median, meamed
from .mean import mean
from .median import coordinate_median
from .monna import monna
from .nnm import nnm
from .pipeline import Pipeline
from .registry import (
    PRE_AGGREGATORS,
    RULES,
    Aggregate,
    PreAggregated,
    PreAggregator,
    Rule,
    register_pre_aggregator,
    RuleRefused,
    register_rule,
    rule,
)
from .sorting import set_compile_enabled
from .trimmed_mean import trimmed_mean

__all__ = [
    "RULES",
    "PRE_AGGREGATORS",
    "Aggregate",
    "PreAggregated",
    "PreAggregator",
    "Rule",
    "Pipeline",
    "RuleRefused",
    "register_rule",
    "rule",
    "register_pre_aggregator",
    "pairwise_sq_distances",
    "gram",
    "accurate_gram",
    "set_compile_enabled",
    # rules
    "mean",
    "coordinate_median",
    "trimmed_mean",
    "meamed",
    "mean_around_median",
    "krum",
    "krum_scores",
    "krum_select",
    "multi_krum",
    "geometric_median",
    "centered_clipping",
    "monna",
    "mda",
    "bulyan",
    "bulyan_select",
    "caf",
    # pre-aggregators
    "bucketing",
    "bucketing_shape",
    "nnm",
    "static_clipping",
    "clip_to_radius",
    "arc",
    "arc_count",
]
