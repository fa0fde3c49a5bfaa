"""Post-processing of byzmpi traces: load them into pandas DataFrames, report on a run, compare
a sweep, follow a live job.

    from byzmpi.analysis import load_runs, load_rounds, load_messages, read_trace, LiveTrace
    runs = load_runs("runs/sweep/")            # one row per trace: flattened config + final metrics
    rounds = load_rounds("runs/sweep/*.h5")    # every round of every trace, with a `run` column

Attributes are imported lazily: ``byzmpi`` itself (and ``byzmpi run``) never imports pandas or
matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "find_traces": "sources",
    "read_trace": "load",
    "read_traces": "load",
    "load_runs": "load",
    "load_rounds": "load",
    "load_evals": "load",
    "load_messages": "load",
    "LiveTrace": "load",
    "TraceData": "load",
    "flatten_config": "load",
    "build_report": ("report", "build"),
    "compare_traces": ("compare", "build"),
    "analyse_sweep": ("sweep", "analyse"),
    "follow": "watch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'byzmpi.analysis' has no attribute {name!r}")
    module, attr = (target, name) if isinstance(target, str) else target
    return getattr(import_module(f".{module}", __name__), attr)
