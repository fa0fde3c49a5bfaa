"""Typed run configuration: a TOML file plus ``--set section.key=value`` overrides.

Every rank loads and validates the same file the same way, before any collective, so a bad field
fails identically everywhere with one line naming the field and what is allowed
(:class:`~byzmpi.errors.ConfigError`).

Sections ``run``, ``clients``, ``task`` and ``debug`` have fixed fields (declared below); the
``method``, ``aggregator`` and ``attack`` sections name a component of the catalogue and take that
component's declared parameters. The resolved config (defaults filled in) is what traces and
checkpoints record.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .aggregators import PRE_AGGREGATORS, RULES, Pipeline
from .attacks import ATTACKS
from .compressors import COMPRESSORS
from .errors import ConfigError
from .methods import METHODS
from .params import Param, check_param, resolve_params

RUN = {
    p.name: p
    for p in [
        Param("name", str, "run", "run name, used in the default trace path"),
        Param("seed", int, 0, "seed of every random stream", minimum=0),
        Param("rounds", int, 100, "number of rounds", minimum=1),
        Param("eval_every", int, 10, "evaluate the model every k rounds (and after the last)", minimum=1),
        Param("trace", str, "runs/{name}.h5", "HDF5 trace path; {name} and {seed} are substituted"),
        Param("trace_messages", bool, True, "write the per-message table"),
        Param("flush_every", int, 256, "trace rows buffered before a write", minimum=1),
        Param("flush_seconds", float, 2.0, "longest time rows stay buffered", minimum=0.0),
        Param(
            "progress",
            str,
            "auto",
            "bar on a terminal, log lines in batch jobs (auto)",
            choices=("auto", "bar", "log", "none"),
        ),
        Param("log_every", float, 10.0, "seconds between progress log lines", minimum=0.0),
        Param(
            "server_dtype",
            str,
            "float32",
            "dtype of the server's model and aggregation",
            choices=("float32", "float64"),
        ),
        Param(
            "plugins",
            list,
            [],
            "modules (dotted names or .py paths) imported before validation, "
            "to register your own rules, attacks or methods",
            item=str,
        ),
        Param(
            "sync_every", int, 10, "rounds between the all-rank check for a stop request (SIGTERM/SIGUSR1)", minimum=1
        ),
    ]
}

CLIENTS = {
    p.name: p
    for p in [
        Param("n", int, 8, "number of clients", minimum=1),
        Param("byzantine", int, 0, "number of Byzantine clients, chosen by seed", minimum=0),
        Param("byzantine_ids", list, None, "explicit Byzantine client ids (overrides the count)", nullable=True),
        Param("per_round", int, None, "clients sampled per round, C (default: all)", minimum=1, nullable=True),
        Param(
            "full_round",
            int,
            None,
            "clients sampled in full rounds (coin = 1), C-hat (default: all)",
            minimum=1,
            nullable=True,
        ),
    ]
}

TASK = {
    p.name: p
    for p in [
        Param("name", str, "synthetic", "dataset", choices=("synthetic", "libsvm", "digits")),
        Param("path", str, None, "LIBSVM file (task.name = libsvm)", nullable=True),
        Param(
            "features",
            int,
            None,
            "synthetic: feature count, default 20 (a bias feature is added); libsvm: "
            "force the feature count (default: the largest index in the file)",
            minimum=1,
            nullable=True,
        ),
        Param("samples", int, 4000, "synthetic: number of samples (train + test)", minimum=1),
        Param("heterogeneity", float, 1.0, "synthetic: client shift h (0 = iid clients)", minimum=0.0),
        Param("label_noise", float, 0.5, "synthetic: std of the noise added to the margin", minimum=0.0),
        Param(
            "model",
            str,
            None,
            "logreg (binary), softmax or mlp (default: logreg for binary data, softmax otherwise)",
            choices=("logreg", "softmax", "mlp"),
            nullable=True,
        ),
        Param("hidden", int, 32, "mlp: hidden units", minimum=1),
        Param(
            "regularizer",
            str,
            "l2",
            "l2: (lam/2)|x|^2; nonconvex: lam*sum x^2/(1+x^2); none",
            choices=("l2", "nonconvex", "none"),
        ),
        Param("lam", float, 0.01, "regularisation strength", minimum=0.0),
        Param(
            "partition",
            str,
            None,
            "natural (synthetic default), full, iid (default otherwise), strided, dirichlet",
            choices=("natural", "full", "iid", "strided", "dirichlet"),
            nullable=True,
        ),
        Param("alpha", float, 1.0, "Dirichlet concentration", minimum=1e-6),
        Param("batch_size", int, 32, "minibatch size per client (0 = full local gradient)", minimum=0),
        Param(
            "test_fraction",
            float,
            None,
            "held-out share (default 0.2; libsvm 0)",
            minimum=0.0,
            maximum=0.9,
            nullable=True,
        ),
        Param("seed", int, None, "data seed (default: run.seed)", minimum=0, nullable=True),
    ]
}

CHECKPOINT = {
    p.name: p
    for p in [
        Param(
            "every", int, 0, "write a checkpoint every k rounds (0: only on SIGTERM/SIGUSR1 and at the end)", minimum=0
        ),
        Param("path", str, "runs/{name}.ckpt.h5", "checkpoint file; {name} and {seed} are substituted"),
        Param(
            "resume",
            str,
            "auto",
            "auto: resume when an unfinished checkpoint of this config exists; "
            "require: fail without one; never: start fresh",
            choices=("auto", "require", "never"),
        ),
    ]
}

DEBUG = {
    p.name: p
    for p in [
        Param("fail_rank", int, -1, "inject a failure on this rank (tests)"),
        Param("fail_round", int, -1, "... at the start of this round"),
    ]
}

THREAT_MODELS = ("omniscient", "local")


class Section(Mapping[str, Any]):
    """A resolved config section: a read-only mapping with attribute access."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Section({self._values!r})"


@dataclass(frozen=True)
class Component:
    """A catalogue choice: its name, its resolved parameters, section-level extras, and (for the
    aggregator) the pre-aggregators in order with their parameters."""

    name: str
    params: Section
    extra: Section
    pre: tuple[tuple[str, Section], ...] = ()

    def to_dict(self) -> dict:
        out = {"name": self.name, **self.extra, **self.params}
        if self.pre:
            out["pre"] = [p for p, _ in self.pre]
            out.update({p: dict(params) for p, params in self.pre})
        return out


@dataclass(frozen=True)
class Config:
    run: Section
    clients: Section
    task: Section
    method: Component
    aggregator: Component
    attack: Component
    debug: Section
    checkpoint: Section
    compressor: Component

    def to_dict(self) -> dict:
        return {
            "run": dict(self.run),
            "clients": dict(self.clients),
            "task": dict(self.task),
            "method": self.method.to_dict(),
            "aggregator": self.aggregator.to_dict(),
            "attack": self.attack.to_dict(),
            "compressor": self.compressor.to_dict(),
            "checkpoint": dict(self.checkpoint),
            "debug": dict(self.debug),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def fingerprint(self) -> str:
        """Hash of everything that determines the trajectory (not where or how it is logged)."""
        d = self.to_dict()
        for key in (
            "name",
            "trace",
            "trace_messages",
            "flush_every",
            "flush_seconds",
            "progress",
            "log_every",
            "eval_every",
            "rounds",
            "sync_every",
            "plugins",
        ):
            d["run"].pop(key, None)
        d.pop("debug")
        d.pop("checkpoint")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def byzantine_ids(self) -> list[int]:
        return list(self.clients.byzantine_ids)

    @property
    def trace_path(self) -> Path:
        return Path(self.run.trace.format(name=self.run.name, seed=self.run.seed))

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint.path.format(name=self.run.name, seed=self.run.seed))


# --------------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` → (["section", "key"], value); the value is read as a TOML value
    (numbers, booleans, quoted strings, arrays) and as a bare string when it is not one."""
    key, sep, raw = text.partition("=")
    path = [p.strip() for p in key.split(".")]
    if not sep or len(path) < 2 or not all(path):
        raise ConfigError(text, "an override must look like section.key=value")
    if path[-1] in ("name", "path", "trace", "threat_model"):  # names are strings, even "nan" or "inf"
        value = raw.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        return path, value
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(path), f"{key} is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read, override and validate a TOML config; raises ConfigError (one line) on any problem."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(apply_overrides(raw, overrides), Path(path).parent)


def _table(raw: Mapping, key: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table ([" + key + "])")
    return dict(value)


def _component(
    raw: Mapping,
    section: str,
    catalogue: Mapping,
    default: str,
    extras: Mapping[str, Param],
    pre_catalogue: Mapping | None = None,
):
    table = _table(raw, section)
    name = table.pop("name", default)
    if not isinstance(name, str) or name not in catalogue:
        raise ConfigError(f"{section}.name", f"must be one of {', '.join(sorted(catalogue))} (got {name!r})")
    extra = {k: check_param(p, table.pop(k, p.default), f"{section}.{k}") for k, p in extras.items()}
    pre: list[tuple[str, Section]] = []
    if pre_catalogue is not None:
        names = table.pop("pre", [])
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{section}.pre", f"must be a list of names (got {names!r})")
        for p in names:
            if p not in pre_catalogue:
                raise ConfigError(
                    f"{section}.pre",
                    f"unknown pre-aggregator {p!r}; allowed: {', '.join(sorted(pre_catalogue)) or 'none'}",
                )
            sub = table.pop(p, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{section}.{p}", "must be a table of the pre-aggregator's parameters")
            pre.append((p, Section(resolve_params(pre_catalogue[p].params, sub, f"{section}.{p}", p))))
        for key, value in table.items():
            if isinstance(value, dict):
                raise ConfigError(f"{section}.{key}", f"parameters of a pre-aggregator not listed in {section}.pre")
    params = resolve_params(catalogue[name].params, table, section, name)
    return Component(name, Section(params), Section(extra), tuple(pre))


def load_plugins(modules: Iterable[str], base: Path | None = None) -> None:
    """Import user modules that register their own rules, attacks or methods. A name ending in
    .py is a file (relative to the config's folder); anything else a module on sys.path."""
    import importlib
    import importlib.util

    for name in modules:
        try:
            if name.endswith(".py"):
                path = Path(name) if base is None or Path(name).is_absolute() else base / name
                key = f"byzmpi_plugin_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
                if key in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(key, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[key] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(key, None)  # a failed plugin is not "loaded"
                    raise
            else:
                importlib.import_module(name)
        except Exception as exc:  # any failure of the user's module is reported as one line
            detail = " ".join(str(exc).split())
            raise ConfigError("run.plugins", f"cannot import {name!r}: {type(exc).__name__}: {detail}") from None


def parse_config(raw: Mapping, base: Path | None = None) -> Config:
    known = {"run", "clients", "task", "method", "aggregator", "attack", "compressor", "checkpoint", "debug"}
    for key in raw:
        if key not in known:
            raise ConfigError(
                key if key.isidentifier() else repr(key), f"unknown section; allowed: {', '.join(sorted(known))}"
            )
    run = resolve_params(RUN, _table(raw, "run"), "run", "run")
    load_plugins(run["plugins"], base)
    clients = resolve_params(CLIENTS, _table(raw, "clients"), "clients", "clients")
    task = resolve_params(TASK, _table(raw, "task"), "task", "task")
    debug = resolve_params(DEBUG, _table(raw, "debug"), "debug", "debug")
    checkpoint = resolve_params(CHECKPOINT, _table(raw, "checkpoint"), "checkpoint", "checkpoint")
    method = _component(raw, "method", METHODS, "sgd", {})
    aggregator = _component(
        raw,
        "aggregator",
        RULES,
        "mean",
        {
            "f": Param(
                "f", int, None, "Byzantine inputs to tolerate (default clients.byzantine)", minimum=0, nullable=True
            ),
        },
        PRE_AGGREGATORS,
    )
    attack = _component(
        raw,
        "attack",
        ATTACKS,
        "none",
        {
            "threat_model": Param(
                "threat_model", str, "omniscient", "who builds Byzantine messages", choices=THREAT_MODELS
            ),
        },
    )

    compressor = _component(raw, "compressor", COMPRESSORS, "identity", {})
    if attack.extra["threat_model"] == "local" and ATTACKS[attack.name].local is None:
        local = sorted(n for n, a in ATTACKS.items() if a.local is not None)
        raise ConfigError(
            "attack.threat_model",
            f"attack {attack.name!r} has no local implementation; local attacks: {', '.join(local)}",
        )
    for section, key, table in (("run", "trace", run), ("checkpoint", "path", checkpoint)):
        try:
            table[key].format(name=run["name"], seed=run["seed"])
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{section}.{key}",
                f"only the placeholders {{name}} and {{seed}} are allowed "
                f"(got {table[key]!r}: {type(exc).__name__} {exc})",
            ) from None
    _resolve_clients(clients, run["seed"])
    _resolve_task(task, run["seed"])
    if task["path"]:  # relative to the config's folder, then $BYZMPI_DATA: the rule is in byzmpi/paths.py
        from .paths import resolve_data_path

        task["path"] = str(resolve_data_path(task["path"], base))
    cfg = Config(
        Section(run),
        Section(clients),
        Section(task),
        method,
        aggregator,
        attack,
        Section(debug),
        Section(checkpoint),
        compressor,
    )
    _check_method(cfg)
    cfg = _resolve_aggregator(cfg)
    check_aggregator_validity(cfg)
    return cfg


def _resolve_clients(clients: dict, seed: int) -> None:
    from .plan import choose_byzantine

    n = clients["n"]
    ids = clients["byzantine_ids"]
    if ids is not None:
        if len(set(ids)) != len(ids) or any(not 0 <= i < n for i in ids):
            raise ConfigError("clients.byzantine_ids", f"must be distinct ids in 0..{n - 1} (got {ids})")
        if len(ids) >= n:
            raise ConfigError("clients.byzantine_ids", "at least one client must be honest")
        ids = sorted(ids)
    else:
        if clients["byzantine"] >= n:
            raise ConfigError("clients.byzantine", f"must be < clients.n = {n} (got {clients['byzantine']})")
        ids = choose_byzantine(seed, n, clients["byzantine"]).tolist()
    clients["byzantine_ids"] = ids
    clients["byzantine"] = len(ids)
    for key in ("per_round", "full_round"):
        if clients[key] is None:
            clients[key] = n
        elif clients[key] > n:
            raise ConfigError(f"clients.{key}", f"must be <= clients.n = {n} (got {clients[key]})")


def _resolve_task(task: dict, seed: int) -> None:
    if task["name"] == "libsvm" and not task["path"]:
        raise ConfigError("task.path", "task.name = 'libsvm' needs the path of a LIBSVM file")
    if task["name"] != "libsvm" and task["path"]:
        raise ConfigError("task.path", f"only used with task.name = 'libsvm' (task.name is {task['name']!r})")
    if task["partition"] is None:
        task["partition"] = "natural" if task["name"] == "synthetic" else "iid"
    if task["partition"] == "natural" and task["name"] != "synthetic":
        raise ConfigError(
            "task.partition", "'natural' exists only for the synthetic dataset; use full, iid, strided or dirichlet"
        )
    if task["test_fraction"] is None:
        task["test_fraction"] = 0.0 if task["name"] == "libsvm" else 0.2
    if task["seed"] is None:
        task["seed"] = seed
    if task["model"] is None:
        task["model"] = "softmax" if task["name"] == "digits" else "logreg"
    if task["name"] == "digits" and task["model"] == "logreg":
        raise ConfigError("task.model", "digits has 10 classes: use softmax or mlp")


def _check_method(cfg: Config) -> None:
    spec = METHODS[cfg.method.name]
    c = cfg.clients
    if spec.full_participation and (c.per_round != c.n or c.full_round != c.n):
        raise ConfigError(
            "clients.per_round",
            f"{spec.name} needs every client every round (per_round = "
            f"full_round = n = {c.n}; got {c.per_round} and {c.full_round})",
        )
    if spec.check is not None:
        spec.check(dict(cfg.method.params), cfg)
    if getattr(ATTACKS[cfg.attack.name], "needs_trajectory", False) and not spec.trajectory:
        raise ConfigError(
            "attack.name",
            f"{cfg.attack.name!r} needs a method that exposes its trajectory (x^k, x^0, step); {spec.name} does not",
        )
    problem = COMPRESSORS[cfg.compressor.name].check(dict(cfg.compressor.params))
    if problem:
        raise ConfigError("compressor", f"{cfg.compressor.name}: {problem}")


def _resolve_aggregator(cfg: Config) -> Config:
    if cfg.aggregator.extra["f"] is not None:
        return cfg
    extra = Section({**cfg.aggregator.extra, "f": cfg.clients.byzantine})
    return Config(
        cfg.run,
        cfg.clients,
        cfg.task,
        cfg.method,
        Component(cfg.aggregator.name, cfg.aggregator.params, extra, cfg.aggregator.pre),
        cfg.attack,
        cfg.debug,
        cfg.checkpoint,
        cfg.compressor,
    )


def sampler_coin(cfg: Config) -> tuple[float, bool]:
    """(p, first round full) of the configured method."""
    return METHODS[cfg.method.name].coin(dict(cfg.method.params))


def possible_sample_sizes(cfg: Config) -> list[int]:
    """Every number of messages a round can deliver (what validity is checked against)."""
    from .plan import Sampler

    p, first_full = sampler_coin(cfg)
    c = cfg.clients
    return Sampler(
        seed=cfg.run.seed,
        n=c.n,
        per_round=c.per_round,
        full_round=c.full_round,
        p=p,
        byzantine_ids=c.byzantine_ids,
        first_full=first_full,
    ).possible_sizes()


def build_pipeline(cfg: Config) -> Pipeline:
    """The configured aggregator (pre-aggregators, then the rule)."""
    a = cfg.aggregator
    return Pipeline.build(a.name, dict(a.params), [(p, dict(pp)) for p, pp in a.pre], cfg.run.seed)


def check_aggregator_validity(cfg: Config) -> None:
    """The rule must be valid in the worst sampled round: every m the sampler can produce, as the
    rule sees it after the pre-aggregators."""
    pipe = build_pipeline(cfg)
    f = cfg.aggregator.extra["f"]
    for m in possible_sample_sizes(cfg):
        if not pipe.valid(m, f):
            m2, f2 = pipe.shape(m, f)
            seen = f" (m = {m2}, f = {f2} after {', '.join(p.name for p, _ in pipe.pre)})" if pipe.pre else ""
            raise ConfigError(
                "aggregator.f",
                f"{pipe.rule.name} needs {pipe.rule.condition.text}, but a round can deliver m = {m} messages with "
                f"f = {f}{seen} (clients.per_round = {cfg.clients.per_round}, clients.full_round = "
                f"{cfg.clients.full_round}); lower aggregator.f or sample more clients",
            )
