"""Sweep descriptions: one grid of runs that ``byzmpi run``, ``byzmpi grid`` and ``slurm/sweep.sbatch``
expand identically (pure, stdlib only: no torch, no MPI).

A description is a list of **sources** plus **axes**:

* sources, in the order given, each one or more *entries* (a config file with its own overrides):

  - ``CONFIG.toml``: one entry; its optional ``[sweep]`` table adds axes (below) and is removed
    before the config parser sees the file;
  - a **grid file** (any other file name): one entry per line ``CONFIG [--set K=V ...]``, split like
    a shell command line (quotes group words; no variables, no globs); blank lines and ``#``
    comments do not count;
  - a **folder**: one entry per ``*.toml`` in it, sorted by file name.

* axes: ``--grid FIELD=V1,V2,...`` (repeatable), ``--seeds SPEC`` (``1..5``, ``1,2,7``, ``1..3,10``:
  the field ``run.seed``), and the ``[sweep]`` table of a TOML source::

      [sweep]
      "aggregator.name" = ["krum", "median", "trimmed_mean"]   # FIELD = [values]; a dotted bare
      attack.name = ["alie", "ipm"]                            # key (attack.name = ...) is the same
      seeds = "1..5"                                           # or seeds = [1, 2, 7]

  A ``--grid`` value is what ``--set`` takes (a TOML value, else a bare string); values are split at
  commas outside brackets and quotes (``aggregator.pre=[],["bucketing"]``); an integer item ``A..B``
  is the range A, A+1, ..., B. A ``--grid`` field that the ``[sweep]`` table also names replaces the
  table's values in place; ``--seeds`` replaces the table's ``seeds``.

**Order**: entries in source order, then the cartesian product of the axes with the *last* axis
varying fastest (like nested loops, ``itertools.product``): the ``[sweep]`` table's fields in file
order, then the ``--grid`` fields in command-line order, then the seeds (always innermost). Run
*i* of the expansion is array task *i* on Slurm.

**Overrides** of a run, applied in this order: the entry's own (grid-file line), the command line's
``--set``, the axes' values, and ``run.name=NAME``. An axis may not name a field that a ``--set``
or the entry's line also sets (a ConfigError).

**Names** (``run.name``, so traces at ``runs/{name}.h5`` do not collide):
``BASE[_TOKEN...]`` with one token per axis that has more than one value, in axis order:

* ``*.name`` fields: the value (``krum``); ``run.seed``: ``s`` + seed (``s3``); other fields:
  the key and the value (``lr0.1``; ``clip-true`` when the value starts with a letter);
* characters outside ``[A-Za-z0-9._+-]`` become ``-`` (in the base too, but for a grid line's own ``run.name``);
* BASE: a ``--set run.name=NAME`` on the command line if given, else for a TOML source its
  ``[run] name`` (else the file stem), for a grid-file line or folder entry ``STEM_i`` (the file's or
  folder's name and the entry's 0-based position in it; a line that sets ``run.name`` keeps it);
* names that still collide (or are longer than 120 characters) get ``-`` and 8 hex digits of a hash
  of the run's config path and overrides, so a name never depends on its position in the grid.

A lone run with no axis and no grid file or folder keeps its config's name untouched (no
``run.name`` override is added).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

SEED_FIELD = "run.seed"
NAME_FIELD = "run.name"
DEFAULT_NAME = "run"  # [run] name's default (byzmpi.config.RUN), what a lone unnamed run is called
MAX_NAME = 120
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass
class GridRun:
    """One run of a grid: its name, config file and ``--set`` overrides (``run.name`` included
    when the grid names it), and the axis values that make it (field → value text)."""

    name: str
    config: Path
    overrides: list[str]
    index: int = 0
    values: dict[str, str] = field(default_factory=dict)
    named: bool = field(default=False, repr=False)  # whether ``run.name=NAME`` is among the overrides

    def argv(self) -> list[str]:
        """The ``byzmpi run`` arguments of this run alone: CONFIG --set K=V ..."""
        out = [str(self.config)]
        for o in self.overrides:
            out += ["--set", o]
        return out

    def load(self) -> Any:
        """The validated :class:`byzmpi.config.Config` of this run."""
        return load_config(self.config, self.overrides)

    def line(self) -> str:
        """``INDEX<TAB>NAME<TAB>CONFIG --set K=V ...`` (shell-quoted), as ``byzmpi grid --list`` prints it."""
        return f"{self.index}\t{self.name}\t{shlex.join(self.argv())}"


@dataclass
class Axis:
    field: str
    values: list[str]  # override texts (what --set takes)
    labels: list[str]  # value texts for names


@dataclass
class _Entry:
    config: Path
    overrides: list[str]
    base: str
    axes: list[Axis] = field(default_factory=list)
    seeds: Axis | None = None
    named: bool = False  # named by the grid (BASE_i, a line's own run.name, --set run.name): add run.name=
    lone_name: str = DEFAULT_NAME  # its name when the grid does not name it (the config's own)


# -- loading a config whose file may hold a [sweep] table ------------------------------------------
def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text (byte {exc.start}): a TOML file must be UTF-8") from None


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Any:
    """:func:`byzmpi.config.load_config`, with the file's ``[sweep]`` table (if any) left out."""
    from . import config as C

    raw = read_toml(path)
    if "sweep" not in raw:
        return C.load_config(path, overrides)
    raw.pop("sweep")
    return C.parse_config(C.apply_overrides(raw, overrides), Path(path).parent)


# -- parsing axes ----------------------------------------------------------------------------------
def split_values(text: str) -> list[str]:
    """``a,[1, 2],"x,y"`` → ``["a", "[1, 2]", '"x,y"']``: commas outside brackets and quotes."""
    out, cur, depth, quote = [], "", 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def _expand_ranges(items: list[str], where: str) -> list[str]:
    out: list[str] = []
    for item in items:
        m = _RANGE.match(item)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise ConfigError(where, f"empty range {item} (A..B needs A <= B)")
            out += [str(v) for v in range(a, b + 1)]
        elif ".." in item and not item.startswith(("'", '"', "[")):
            raise ConfigError(where, f"bad range {item!r}: integers A..B, e.g. 1..5")
        else:
            out.append(item)
    return out


def _check_field(name: str, where: str) -> str:
    name = name.strip()
    if not _FIELD.match(name):
        raise ConfigError(where, "expected FIELD=V1,V2,... with FIELD = section.key (e.g. aggregator.name=krum,median)")
    if name == NAME_FIELD:
        raise ConfigError(where, "run.name cannot be swept: every run gets its name from the swept fields")
    return name


def _unique(values: list[str], where: str) -> list[str]:
    seen = set()
    for v in values:
        if v in seen:
            raise ConfigError(where, f"value {v} given twice")
        seen.add(v)
    return values


def _label(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        t = t[1:-1]
    return t


def parse_axis(text: str) -> Axis:
    """One ``--grid FIELD=V1,V2,...``."""
    where = f"--grid {text}"
    key, sep, rest = text.partition("=")
    if not sep:
        raise ConfigError(where, "expected FIELD=V1,V2,... (e.g. aggregator.name=krum,median)")
    name = _check_field(key, where)
    values = split_values(rest)
    if any(v == "" for v in values):
        raise ConfigError(where, "empty value (values are separated by commas: FIELD=V1,V2,...)")
    values = _unique(_expand_ranges(values, where), where)
    return Axis(name, values, [_label(v) for v in values])


def parse_seeds(spec: str | Sequence[Any], where: str = "--seeds") -> Axis:
    """``1..5``, ``1,2,7``, ``1..3,10`` or a list of integers → the ``run.seed`` axis."""
    items = [str(s) for s in spec] if isinstance(spec, (list, tuple)) else split_values(str(spec))
    if not items or any(i == "" for i in items):
        raise ConfigError(where, f"{spec!r}: expected integers or ranges A..B, e.g. 1..5 or 1,2,7")
    values = _expand_ranges(items, where)
    for v in values:
        if not re.fullmatch(r"-?\d+", v.strip()):
            raise ConfigError(where, f"{spec!r}: seeds are integers or ranges A..B, e.g. 1..5 or 1,2,7")
    values = _unique([str(int(v)) for v in values], where)
    return Axis(SEED_FIELD, values, values)


def toml_value(v: Any) -> str:
    """A TOML value as ``--set`` reads it back (strings quoted, so "true" stays a string)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)  # TOML spells inf, -inf and nan as Python does
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise ConfigError("sweep", f"cannot sweep a value of type {type(v).__name__} ({v!r})")


def _flat(table: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in table.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def parse_sweep_table(table: Any, path: Path) -> tuple[list[Axis], Axis | None]:
    """The ``[sweep]`` table of a config: axes in file order, and the seeds."""
    where = f"{path}: [sweep]"
    if not isinstance(table, dict):
        raise ConfigError(where, "must be a table of FIELD = [values]")
    axes: list[Axis] = []
    seeds = None
    for key, v in _flat(table):
        if key == "seeds":
            seeds = parse_seeds(v, f"{where} seeds")
            continue
        name = _check_field(key, f"{where} {key}")
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{where} {key}", 'expected a non-empty list of values, e.g. ["krum", "median"]')
        values = _unique([toml_value(x) for x in v], f"{where} {key}")
        labels = [x if isinstance(x, str) else toml_value(x) for x in v]
        axis = Axis(name, values, labels)
        if name == SEED_FIELD:
            seeds = axis
        else:
            axes.append(axis)
    return axes, seeds


# -- sources -----------------------------------------------------------------------------------------
def _set_fields(overrides: Iterable[str]) -> dict[str, str]:
    out = {}
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep:
            out[key.strip()] = value
    return out


def _line_overrides(words: list[str], where: str) -> list[str]:
    out, i = [], 0
    while i < len(words):
        w = words[i]
        if w == "--set" and i + 1 < len(words):
            out.append(words[i + 1])
            i += 2
        elif w.startswith("--set="):
            out.append(w[len("--set=") :])
            i += 1
        else:
            raise ConfigError(where, f"unexpected {w!r}: a line is CONFIG [--set SECTION.KEY=VALUE ...]")
    return out


def grid_lines(path: Path) -> list[str]:
    """The runs of a grid file: lines that are neither blank nor ``#`` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read grid file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def folder_configs(path: Path) -> list[Path]:
    return sorted((p for p in path.glob("*.toml") if p.is_file()), key=lambda p: p.name.encode())


def _entries(source: str | Path, name: str | None) -> list[_Entry]:
    path = Path(source)
    if path.is_dir():
        files = folder_configs(path)
        if not files:
            raise ConfigError(str(path), "the folder holds no *.toml config")
        stem = safe(name or path.resolve().name)
        return [_toml_entry(p, [], f"{stem}_{i}", named=True) for i, p in enumerate(files)]
    if path.suffix == ".toml" or not path.exists():
        return [_toml_entry(path, [], name, named=False)]
    out = []
    stem = safe(name or path.stem)
    for i, ln in enumerate(grid_lines(path)):
        where = f"{path} run {i}"
        try:
            words = shlex.split(ln)
        except ValueError as exc:
            raise ConfigError(where, f"cannot split the line: {exc}") from None
        own = _line_overrides(words[1:], where)
        base = _label(_set_fields(own)[NAME_FIELD]) if NAME_FIELD in _set_fields(own) else f"{stem}_{i}"
        own = [o for o in own if o.partition("=")[0].strip() != NAME_FIELD]
        out.append(_toml_entry(Path(words[0]), own, base, named=True))
    if not out:
        raise ConfigError(str(path), "the grid file holds no runs (one CONFIG [--set K=V ...] per line)")
    return out


def _toml_entry(path: Path, own: list[str], base: str | None, *, named: bool) -> _Entry:
    raw = read_toml(path)
    axes, seeds = parse_sweep_table(raw["sweep"], path) if "sweep" in raw else ([], None)
    run = raw.get("run", {})
    own_name = str(run.get("name")) if isinstance(run, dict) and run.get("name") else None
    if base is None:
        base = safe(own_name or path.stem)
    elif not named:
        named = True  # --set run.name=NAME
    return _Entry(path, own, base, axes, seeds, named, own_name or DEFAULT_NAME)


# -- expansion ---------------------------------------------------------------------------------------
def safe(text: str) -> str:
    """A value as a file-name-safe token: characters outside [A-Za-z0-9._+-] become '-'."""
    return _UNSAFE.sub("-", text).strip("-") or "empty"


def token(field_: str, label: str) -> str:
    """The part of a run's name that one axis value gives (see the module doc)."""
    key = field_.rsplit(".", 1)[1]
    value = safe(label)
    if field_ == SEED_FIELD:
        return f"s{value}"
    if key == "name":
        return value
    return f"{key}{value}" if re.match(r"[-+.0-9]", value) else f"{key}-{value}"


def _digest(config: Path, overrides: Sequence[str]) -> str:
    return hashlib.sha1("\0".join([str(config), *overrides]).encode()).hexdigest()[:8]


def _merge_axes(table: list[Axis], table_seeds: Axis | None, cli: list[Axis], cli_seeds: Axis | None) -> list[Axis]:
    axes = list(table)
    for a in cli:
        if a.field == SEED_FIELD:
            if cli_seeds is not None:
                raise ConfigError("--grid run.seed", "seeds given twice (--grid run.seed and --seeds)")
            cli_seeds = a
            continue
        at = [i for i, b in enumerate(axes) if b.field == a.field]
        if at:
            axes[at[0]] = a
        else:
            axes.append(a)
    seeds = cli_seeds if cli_seeds is not None else table_seeds
    return axes + ([seeds] if seeds is not None else [])


def expand(
    sources: Sequence[str | Path],
    grid: Sequence[str] = (),
    seeds: str | None = None,
    overrides: Sequence[str] = (),
) -> list[GridRun]:
    """Every run of a sweep description, in order (see the module doc for the order and names)."""
    if not sources:
        raise ConfigError("grid", "no config, grid file or folder given")
    cli_axes = [parse_axis(g) for g in grid]
    cli_seeds = parse_seeds(seeds) if seeds is not None else None
    sets = _set_fields(overrides)
    name = safe(_label(sets[NAME_FIELD])) if NAME_FIELD in sets else None
    common = [o for o in overrides if o.partition("=")[0].strip() != NAME_FIELD]
    runs: list[GridRun] = []
    for source in sources:
        for entry in _entries(source, name):
            axes = _merge_axes(entry.axes, entry.seeds, cli_axes, cli_seeds)
            own = _set_fields(entry.overrides)
            for a in axes:
                if a.field in sets or a.field in own:
                    where = "--set" if a.field in sets else f"{entry.config} (its grid line)"
                    raise ConfigError(a.field, f"swept by the grid and also set by {where}")
            varied = [a for a in axes if len(a.values) > 1]
            named = entry.named or bool(varied)
            for combo in itertools.product(*(range(len(a.values)) for a in axes)):
                values = {a.field: a.values[i] for a, i in zip(axes, combo)}
                labels = {a.field: a.labels[i] for a, i in zip(axes, combo)}
                run_name = "_".join([entry.base, *(token(a.field, labels[a.field]) for a in varied)])
                runs.append(
                    GridRun(
                        run_name if named else entry.lone_name,
                        entry.config,
                        [*entry.overrides, *common, *(f"{f}={v}" for f, v in values.items())],
                        values={a.field: labels[a.field] for a in varied},
                        named=named,
                    )
                )
    _finish_names(runs)
    return runs


def _finish_names(runs: list[GridRun]) -> None:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    for i, r in enumerate(runs):
        if counts[r.name] > 1 or len(r.name) > MAX_NAME:
            r.name = f"{r.name[: MAX_NAME - 9]}-{_digest(r.config, r.overrides)}"
            r.named = True
        r.index = i
        if r.named:
            r.overrides.append(f"{NAME_FIELD}={r.name}")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError("grid", f"two runs are identical (same config and overrides): {dup}")


def pick(runs: list[GridRun], index: int | None, what: str = "the grid") -> list[GridRun]:
    """All runs, or only run ``index`` (a ConfigError when out of range)."""
    if index is None:
        return runs
    if not 0 <= index < len(runs):
        raise ConfigError("--index", f"{index}, but {what} has {len(runs)} runs (0..{len(runs) - 1})")
    return [runs[index]]


# -- command line ------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--grid``, ``--seeds`` and ``--index`` (shared by ``byzmpi run`` and ``byzmpi grid``)."""
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="sweep a config field over these values (repeatable: cartesian product, last varies fastest)",
    )
    p.add_argument("--seeds", default=None, metavar="SPEC", help="sweep run.seed: 1..5, 1,2,7 or 1..3,10 (innermost)")
    p.add_argument("--index", type=int, default=None, metavar="I", help="only run I (0-based) of the expansion")


def from_args(args: argparse.Namespace) -> list[GridRun]:
    """The runs that a ``byzmpi run``/``byzmpi grid`` command line describes (``--index`` applied)."""
    runs = expand(args.configs, args.grid, args.seeds, args.overrides)
    return pick(runs, args.index, ", ".join(map(str, args.configs)))


def forward_arguments(args: argparse.Namespace) -> list[str]:
    """The grid flags again, for a command line that re-runs this one (``byzmpi run -n``)."""
    out = [x for g in args.grid for x in ("--grid", g)]
    if args.seeds is not None:
        out += ["--seeds", args.seeds]
    if args.index is not None:
        out += ["--index", str(args.index)]
    return out


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``byzmpi grid`` subcommand."""
    g = sub.add_parser(
        "grid",
        help="print the runs a sweep description expands to (names, overrides; no MPI)",
        description="Expand configs, grid files, folders, [sweep] tables, --grid and --seeds into runs, "
        "exactly as `byzmpi run` and slurm/sweep.sbatch do.",
    )
    g.add_argument("configs", nargs="+", type=Path, help="TOML configs, grid files (CONFIG [--set K=V] lines), folders")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    add_arguments(g)
    out = g.add_mutually_exclusive_group()
    out.add_argument("--count", action="store_true", help="print the number of runs")
    out.add_argument("--list", action="store_true", help="INDEX<TAB>NAME<TAB>CONFIG --set ... per run (default)")
    out.add_argument("--names", action="store_true", help="the run names, one per line")
    out.add_argument("--json", action="store_true", help="a JSON list of {index, name, config, overrides, values}")
    g.add_argument("--check", action="store_true", help="also load and validate every run's config (imports torch)")
    g.set_defaults(func=command)


def check(runs: Sequence[GridRun]) -> None:
    """Load every run's config; the first error names the run."""
    for r in runs:
        try:
            r.load()
        except ConfigError as exc:
            raise ConfigError(f"run {r.index} ({r.name})", str(exc)) from None


def command(args: argparse.Namespace) -> int:
    runs = from_args(args)
    if args.check:
        check(runs)
    if args.count:
        print(len(runs))
    elif args.names:
        print("\n".join(r.name for r in runs))
    elif args.json:
        rows = [
            {"index": r.index, "name": r.name, "config": str(r.config), "overrides": r.overrides, "values": r.values}
            for r in runs
        ]
        print(json.dumps(rows, indent=1))
    else:
        print("\n".join(r.line() for r in runs))
    return 0
