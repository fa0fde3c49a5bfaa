"""What a sweep varied, and how each defence fared: pure functions on the runs DataFrame
(:func:`byzmpi.analysis.load.load_runs`).

* **swept fields**: resolved-config fields whose value differs between runs, without bookkeeping
  fields (run name, trace path, logging), replicate fields (seeds: averaged over), parameters
  implied by a component's name (``attack.std`` is only set for ``gaussian``) and fields that
  mirror another one-to-one (``aggregator.f`` following ``clients.byzantine``).
* **attack** label: ``attack.name`` plus the swept ``attack.*`` fields; **defence** label:
  ``aggregator.name`` plus the swept ``aggregator.*`` fields; **other** swept fields (learning
  rate, Byzantine count, ...) make the *setting* together with the defence.
* a **cell** is (setting, attack): the metric averaged over replicates. Non-finite results
  (a diverged run) count as the worst possible value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .markdown import fmt
from .metrics import HIGHER_IS_BETTER

BOOKKEEPING_PREFIXES = ("debug.", "checkpoint.")
BOOKKEEPING = {
    "run.name",
    "run.trace",
    "run.trace_messages",
    "run.flush_every",
    "run.flush_seconds",
    "run.progress",
    "run.log_every",
    "run.plugins",
    "clients.byzantine_ids",
}
REPLICATES = ("run.seed", "task.seed")
#: sections in the order their fields are kept when two fields mirror each other
SECTION_PRIORITY = ("attack", "clients", "task", "method", "compressor", "run", "aggregator")
NAMED_SECTIONS = ("attack", "aggregator", "method", "compressor")
MISSING = "-"


def _key(v: Any) -> Any:
    """A hashable, comparable stand-in for a config value (missing → '-')."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if isinstance(v, list):
        return tuple(v)
    return v


def value_text(v: Any) -> str:
    """A config value as a label writes it: TOML spelling for booleans, 6 significant digits."""
    v = _key(v)
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return fmt(v)


def config_columns(runs: pd.DataFrame) -> list[str]:
    """Columns of a runs DataFrame that are resolved-config fields: ``section.key`` (the summary
    columns of :func:`~byzmpi.analysis.metrics.run_row` have no dot)."""
    return [c for c in runs.columns if "." in c]


def _n_values(col: pd.Series) -> int:
    return len({_key(v) for v in col})


def _implied_by_name(runs: pd.DataFrame, field_: str) -> bool:
    """Whether a component parameter takes one value per component name (e.g. ``attack.std``,
    set only for ``gaussian``): then the name already says it."""
    section, key = field_.split(".", 1)
    name_col = f"{section}.name"
    if section not in NAMED_SECTIONS or key == "name" or name_col not in runs or _n_values(runs[name_col]) <= 1:
        return False
    groups = runs.groupby(runs[name_col].map(_key))[field_]
    return all(_n_values(g) <= 1 for _, g in groups)


def _mirrors(a: pd.Series, b: pd.Series) -> bool:
    pairs = {(_key(x), _key(y)) for x, y in zip(a, b)}
    return len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})


def _priority(field_: str) -> tuple[int, str]:
    section = field_.split(".", 1)[0]
    return (SECTION_PRIORITY.index(section) if section in SECTION_PRIORITY else len(SECTION_PRIORITY), field_)


def swept_fields(runs: pd.DataFrame) -> list[str]:
    """The config fields a sweep varied (see the module doc for what is left out)."""
    cols = [
        c
        for c in config_columns(runs)
        if c not in BOOKKEEPING
        and c not in REPLICATES
        and not c.startswith(BOOKKEEPING_PREFIXES)
        and _n_values(runs[c]) > 1
    ]
    cols = [c for c in cols if not _implied_by_name(runs, c)]
    kept: list[str] = []
    for c in sorted(cols, key=_priority):
        if c.endswith(".name") or not any(_mirrors(runs[c], runs[k]) for k in kept):
            kept.append(c)
    return sorted(kept, key=_priority)


def _label(row: pd.Series, name_col: str, fields: Sequence[str]) -> str:
    name = str(_key(row.get(name_col, MISSING)))
    extra = [f"{f.split('.', 1)[1]}={value_text(row[f])}" for f in fields if f != name_col and _key(row[f]) != MISSING]
    return f"{name}({', '.join(extra)})" if extra else name


@dataclass
class Sweep:
    """A sweep's runs with ``attack``, ``defence`` and ``setting`` labels, and its axes."""

    runs: pd.DataFrame
    swept: list[str]
    attack_fields: list[str]
    defence_fields: list[str]
    other_fields: list[str]
    replicates: list[str] = field(default_factory=list)

    @property
    def attacks(self) -> list[str]:
        return _ordered(self.runs["attack"])

    @property
    def defences(self) -> list[str]:
        return _ordered(self.runs["defence"])

    def facets(self) -> list[tuple[tuple[str, Any], ...]]:
        """Combinations of the other swept fields, as ((field, value), ...) tuples."""
        if not self.other_fields:
            return [()]
        combos = self.runs[self.other_fields].map(_key).drop_duplicates()
        combos = combos.sort_values(self.other_fields, key=lambda s: s.map(_sort_key))
        return [tuple(zip(self.other_fields, row)) for row in combos.itertuples(index=False)]

    def facet_runs(self, facet: tuple[tuple[str, Any], ...]) -> pd.DataFrame:
        mask = np.ones(len(self.runs), dtype=bool)
        for f, v in facet:
            mask &= (self.runs[f].map(_key) == v).to_numpy()
        return self.runs[mask]


def _sort_key(v: Any) -> Any:
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def _ordered(col: pd.Series) -> list[str]:
    return list(dict.fromkeys(col))


def facet_title(facet: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{f}={value_text(v)}" for f, v in facet) or "all runs"


def analyse(runs: pd.DataFrame) -> Sweep:
    """Label a runs DataFrame's attacks, defences and settings from what the sweep varied."""
    runs = runs.copy()
    swept = swept_fields(runs)
    attack = [f for f in swept if f.startswith("attack.")]
    defence = [f for f in swept if f.startswith("aggregator.")]
    other = [f for f in swept if f not in attack and f not in defence]
    runs["attack"] = runs.apply(lambda r: _label(r, "attack.name", attack), axis=1) if len(runs) else []
    runs["defence"] = runs.apply(lambda r: _label(r, "aggregator.name", defence), axis=1) if len(runs) else []
    runs["setting"] = (
        runs.apply(lambda r: ", ".join([r["defence"], *(f"{f}={value_text(r[f])}" for f in other)]), axis=1)
        if len(runs)
        else []
    )
    if len(runs):
        rank = {c: runs[c].map(lambda v: _ORDER.get(str(v).split("(")[0], len(_ORDER))) for c in ("defence", "attack")}
        runs = (
            runs.assign(_d=rank["defence"], _a=rank["attack"])
            .sort_values(["_d", "defence", "_a", "attack"], kind="stable")
            .drop(columns=["_d", "_a"])
            .reset_index(drop=True)
        )
    reps = [c for c in REPLICATES if c in runs and _n_values(runs[c]) > 1]
    return Sweep(runs, swept, attack, defence, other, reps)


#: common rules and attacks in a readable order (baselines first); others follow alphabetically
_ORDER = {
    n: i
    for i, n in enumerate(
        ["mean", "median", "trimmed_mean", "krum", "multi_krum", "none", "sign_flip", "gaussian", "alie"]
    )
}


def badness(values: pd.Series | np.ndarray, metric: str) -> np.ndarray:
    """Values oriented so that larger is worse; non-finite results are +inf (worst)."""
    v = np.asarray(values, dtype=float)
    v = -v if HIGHER_IS_BETTER[metric] else v
    return np.where(np.isfinite(v), v, np.inf)


def _worst_value(metric: str) -> float:
    return -math.inf if HIGHER_IS_BETTER[metric] else math.inf


#: columns of :func:`cells` after the key columns
CELL_COLUMNS = ["value", "mean", "std", "n", "runs", "diverged", "min", "max", "worst_run", "worst_seed", "example"]


def _replicate_text(row: pd.Series, fields: Sequence[str]) -> str:
    return ", ".join(f"{f.split('.', 1)[1]}={value_text(row[f])}" for f in fields if f in row.index)


def cells(sweep: Sweep, metric: str) -> pd.DataFrame:
    """One row per (other fields, defence, attack) over its replicates (seeds):

    * ``value``: the mean of the final ``metric``, or the worst possible value when a replicate
      diverged (non-finite); what heatmaps, worst cases and rankings use;
    * ``mean``, ``std`` (sample standard deviation, ddof = 1; NaN for one replicate), ``min``,
      ``max`` over the ``n`` finite replicates; ``runs`` replicates in all, ``diverged`` of them
      non-finite;
    * ``worst_run``: the replicate whose result was worst (a diverged one first), ``worst_seed`` its
      replicate fields (``seed=3``); ``example``: the first replicate."""
    col = f"final_{metric}"
    keys = [*sweep.other_fields, "defence", "attack", "setting"]
    rows = []
    for key, g in sweep.runs.groupby(
        [sweep.runs[k].map(_key) if k in sweep.other_fields else sweep.runs[k] for k in keys], sort=False
    ):
        v = g[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        fin = v[ok]
        worst = int(np.argmax(badness(v, metric)))  # the first of equally bad replicates
        rows.append(
            {
                **dict(zip(keys, key)),
                "value": float(fin.mean()) if ok.all() else _worst_value(metric),
                "mean": float(fin.mean()) if ok.any() else math.nan,
                "std": float(fin.std(ddof=1)) if ok.sum() > 1 else math.nan,
                "n": int(ok.sum()),
                "runs": len(v),
                "diverged": int((~ok).sum()),
                "min": float(fin.min()) if ok.any() else math.nan,
                "max": float(fin.max()) if ok.any() else math.nan,
                "worst_run": g["run"].iloc[worst],
                "worst_seed": _replicate_text(g.iloc[worst], sweep.replicates),
                "example": g["run"].iloc[0],
            }
        )
    return pd.DataFrame(rows, columns=[*keys, *CELL_COLUMNS])


def mean_std_text(mean: float, std: float, n: int, digits: int = 4) -> str:
    """``0.0123 ± 0.0004 (n=5)``; without the ± part for one replicate."""
    if n > 1 and math.isfinite(std):
        return f"{fmt(mean, digits)} ± {fmt(std, 2)} (n={n})"
    return f"{fmt(mean, digits)} (n={n})"


def pivot(
    cell_table: pd.DataFrame, sweep: Sweep, facet: tuple[tuple[str, Any], ...] = (), values: str = "value"
) -> pd.DataFrame:
    """Defence × attack matrix of a facet's cells (rows and columns in the sweep's order) of one
    :func:`cells` column (``value``; ``std``, ``n``, ...)."""
    part = cell_table
    for f, v in facet:
        part = part[part[f] == v]
    table = part.pivot(index="defence", columns="attack", values=values)
    rows = [d for d in sweep.defences if d in table.index]
    cols = [a for a in sweep.attacks if a in table.columns]
    return table.loc[rows, cols]


def worst_case(sweep: Sweep, metric: str, no_attack: str = "none") -> pd.DataFrame:
    """Per setting (defence + other swept fields): the worst cell over attacks (its replicate mean,
    std and n), which attack it was, the value without attack (when the sweep has ``attack.name =
    none``), the mean over attacks, and the worst replicate of the worst cell (``worst_run``,
    ``worst_seed``); ranked best first by the worst case."""
    c = cells(sweep, metric)
    rows = []
    for setting, g in c.groupby("setting", sort=False):
        bad = badness(g["value"], metric)
        i = int(np.argmax(bad))
        none = g[g["attack"] == no_attack]["value"]
        rows.append(
            {
                "setting": setting,
                "defence": g["defence"].iloc[0],
                **{f: g[f].iloc[0] for f in sweep.other_fields},
                "worst": float(g["value"].iloc[i]),
                "worst_std": float(g["std"].iloc[i]),
                "worst_n": int(g["n"].iloc[i]),
                "worst_min": float(g["min"].iloc[i]),
                "worst_max": float(g["max"].iloc[i]),
                "worst_attack": g["attack"].iloc[i],
                "no_attack": float(none.iloc[0]) if len(none) else math.nan,
                "mean_over_attacks": float(g["value"].mean()),
                "attacks": len(g),
                "worst_run": g["worst_run"].iloc[i],
                "worst_seed": g["worst_seed"].iloc[i],
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "setting",
            "defence",
            *sweep.other_fields,
            "worst",
            "worst_std",
            "worst_n",
            "worst_min",
            "worst_max",
            "worst_attack",
            "no_attack",
            "mean_over_attacks",
            "attacks",
            "worst_run",
            "worst_seed",
        ],
    )
    if len(out):
        order = np.lexsort((badness(out["mean_over_attacks"], metric), badness(out["worst"], metric)))
        out = out.iloc[order].reset_index(drop=True)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def select(runs: pd.DataFrame, filters: Sequence[str]) -> pd.DataFrame:
    """Runs matching every ``field=value`` filter (values compared as text, e.g.
    ``attack.name=alie``, ``method.lr=0.1``, ``run=my-run``)."""
    mask = np.ones(len(runs), dtype=bool)
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or key.strip() not in runs:
            from ..errors import SetupError

            raise SetupError(
                f"--select {text}: expected FIELD=VALUE with FIELD a runs column "
                f"(e.g. attack.name=alie, aggregator.name=krum, run=NAME)"
            )
        col = runs[key.strip()].map(lambda v: value_text(v) if not isinstance(v, str) else v)
        mask &= (col == value.strip()).to_numpy()
    return runs[mask]
