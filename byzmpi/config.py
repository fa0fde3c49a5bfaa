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

import dataclasses
import hashlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .aggregators import PRE_AGGREGATORS, RULES, Pipeline
from .assembly import build_pipeline, build_sampler
from .attacks import ATTACKS
from .compressors import COMPRESSORS
from .errors import ConfigError
from .methods import METHODS
from .params import Param, check_param, resolve_params
from .schema import (
    AGGREGATOR_FIELDS,
    ATTACK_FIELDS,
    BUILTIN_MODELS,
    CHECKPOINT,
    CLIENTS,
    DEBUG,
    FILE_DATASETS,
    RUN,
    TASK,
    AggregatorChoice,
    AttackChoice,
    Component,
    Config,
    Section,
    check_run_name,
    format_path,
)


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


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
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
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text (byte {exc.start}): a TOML file must be UTF-8") from None
    return parse_config(apply_overrides(raw, overrides), Path(path).parent)


def _table(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table ([" + key + "])")
    return dict(value)


def _component(
    raw: Mapping[str, Any],
    section: str,
    catalogue: Mapping[str, Any],
    default: str,
    extras: Mapping[str, Param],
    pre_catalogue: Mapping[str, Any] | None = None,
) -> tuple[str, Section, tuple[tuple[str, Section], ...], dict[str, Any]]:
    """(name, resolved parameters, pre-aggregators, the section's own fields) of a catalogue section."""
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
    return name, Section(params), tuple(pre), extra


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
        except (Exception, SystemExit) as exc:  # any failure of the user's module is one line, exit 2
            detail = " ".join(str(exc).split())[:300]
            raise ConfigError("run.plugins", f"cannot import {name!r}: {type(exc).__name__}: {detail}") from None


def parse_config(raw: Mapping[str, Any], base: Path | None = None) -> Config:
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
    check_run_name(run["name"])
    name, params, _, _ = _component(raw, "method", METHODS, "sgd", {})
    method = Component(name, params)
    name, params, pre, fields = _component(raw, "aggregator", RULES, "mean", AGGREGATOR_FIELDS, PRE_AGGREGATORS)
    f = clients["byzantine"] if fields["f"] is None else fields["f"]  # resolved below once ids are known
    aggregator = AggregatorChoice(name, params, pre, f=-1 if fields["f"] is None else f)
    name, params, _, fields = _component(raw, "attack", ATTACKS, "none", ATTACK_FIELDS)
    attack = AttackChoice(name, params, threat_model=fields["threat_model"], space=fields["space"])
    name, params, _, _ = _component(raw, "compressor", COMPRESSORS, "identity", {})
    compressor = Component(name, params)
    if attack.threat_model == "local" and ATTACKS[attack.name].local is None:
        local = sorted(n for n, a in ATTACKS.items() if a.local is not None)
        raise ConfigError(
            "attack.threat_model",
            f"attack {attack.name!r} has no local implementation; local attacks: {', '.join(local)}",
        )
    if attack.threat_model == "local" and attack.space == "estimator" and METHODS[method.name].estimator:
        raise ConfigError(
            "attack.space",
            "the local threat model attacks the messages its hosts send (space = message or auto); "
            "estimator-space attacks are simulated by the server (threat_model = omniscient)",
        )
    for section, key, table in (("run", "trace", run), ("checkpoint", "path", checkpoint)):
        try:
            format_path(table[key], name=run["name"], seed=run["seed"])
        except ValueError as exc:
            raise ConfigError(
                f"{section}.{key}",
                f"only the placeholders {{name}} and {{seed}} are allowed (got {table[key]!r}: {exc})",
            ) from None
    _resolve_clients(clients, run["seed"])
    _resolve_task(task, run["seed"])
    if task["path"]:  # relative to the config's folder, then $BYZMPI_DATA: the rule is in byzmpi/paths.py
        from .paths import resolve_data_path

        task["path"] = str(resolve_data_path(task["path"], base))
    for key in ("model", "data"):  # a 'file.py:attr' names a file next to the config, like run.plugins
        spec = task[key]
        if spec and ":" in spec and spec.partition(":")[0].endswith(".py"):
            file, _, attr = spec.partition(":")
            path = Path(file).expanduser()
            task[key] = f"{path if path.is_absolute() or base is None else (base / path).resolve()}:{attr}"
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
    _check_trusted_client(cfg)
    return cfg


def _check_trusted_client(cfg: Config) -> None:
    """A rule that trusts one client's input (MoNNA's pivot) needs that client named, honest, and
    sampled in every round."""
    params = cfg.aggregator.params
    if "trusted" not in params or not RULES[cfg.aggregator.name].takes_clients:
        return
    trusted, c = params["trusted"], cfg.clients
    if trusted is None:
        raise ConfigError(
            "aggregator.trusted", f"{cfg.aggregator.name} needs the id of a client you trust (0..{c.n - 1})"
        )
    if not 0 <= trusted < c.n:
        raise ConfigError("aggregator.trusted", f"must be a client id in 0..{c.n - 1} (got {trusted})")
    if trusted in c.byzantine_ids:
        raise ConfigError(
            "aggregator.trusted", f"client {trusted} is Byzantine (clients.byzantine_ids); trust an honest one"
        )
    if c.per_round < c.n or c.full_round < c.n:
        raise ConfigError(
            "aggregator.trusted",
            f"{cfg.aggregator.name} needs its trusted client in every round; with clients.per_round = "
            f"{c.per_round} of {c.n} some rounds would not sample client {trusted}",
        )


def _resolve_clients(clients: dict[str, Any], seed: int) -> None:
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


def _resolve_task(task: dict[str, Any], seed: int) -> None:
    name = task["name"]
    if name in FILE_DATASETS and not task["path"]:
        raise ConfigError("task.path", f"task.name = {name!r} needs the path of its data file or folder")
    if name not in FILE_DATASETS and task["path"]:
        raise ConfigError(
            "task.path", f"only used with the file datasets {', '.join(FILE_DATASETS)} (task.name is {name!r})"
        )
    if (name == "torch") != bool(task["data"]):
        raise ConfigError("task.data", "task.name = 'torch' needs task.data = 'module:function', and only it uses it")
    model = task["model"]
    if model is not None and model not in BUILTIN_MODELS and ":" not in model:
        raise ConfigError(
            "task.model", f"must be one of {', '.join(BUILTIN_MODELS)} or 'module:factory' (got {model!r})"
        )
    if model is None and name in ("mnist", "fashion_mnist"):
        task["model"] = "lightnet"
    if model is None and name == "cifar10":
        task["model"] = "resnet18"
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
    if task["model"] is None and task["name"] in ("synthetic", "libsvm", "digits"):
        task["model"] = "softmax" if task["name"] == "digits" else "logreg"  # npz/csv/torch: from the labels
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
    """``aggregator.f`` defaults to the number of Byzantine clients (known once ids are resolved)."""
    if cfg.aggregator.f >= 0:
        return cfg
    return dataclasses.replace(cfg, aggregator=dataclasses.replace(cfg.aggregator, f=cfg.clients.byzantine))


def possible_sample_sizes(cfg: Config) -> list[int]:
    """Every number of messages a round can deliver (what validity is checked against)."""
    return build_sampler(cfg).possible_sizes()


def check_aggregator_validity(cfg: Config) -> None:
    """The rule must be valid in the worst sampled round: every m the sampler can produce, as the
    rule sees it after the pre-aggregators."""
    pipe = build_pipeline(cfg)
    f = cfg.aggregator.f
    for m in possible_sample_sizes(cfg):
        if not pipe.valid(m, f):
            blamed = _blamed_parameter(pipe, m, f)
            if blamed is not None:
                raise ConfigError(
                    f"aggregator.{blamed}",
                    f"{pipe.rule.name} needs {pipe.rule.condition.text}, which fails with {blamed} = "
                    f"{pipe.rule_params[blamed]!r} when a round delivers m = {m} messages (f = {f})",
                )
            m2, f2 = pipe.shape(m, f)
            seen = f" (m = {m2}, f = {f2} after {', '.join(p.name for p, _ in pipe.pre)})" if pipe.pre else ""
            raise ConfigError(
                "aggregator.f",
                f"{pipe.rule.name} needs {pipe.rule.condition.text}, but a round can deliver m = {m} messages with "
                f"f = {f}{seen} (clients.per_round = {cfg.clients.per_round}, clients.full_round = "
                f"{cfg.clients.full_round}); lower aggregator.f or sample more clients",
            )


def _blamed_parameter(pipe: Pipeline, m: int, f: int) -> str | None:
    """The rule parameter at fault when the condition holds with that parameter at its default
    (e.g. ``multi_krum`` with k = 100), else None (then m and f are at fault)."""
    declared = pipe.rule.params
    m2, f2 = pipe.shape(m, f)
    for key, value in pipe.rule_params.items():
        if key in declared and value != declared[key].default:
            trial = {**pipe.rule_params, key: declared[key].default}
            if pipe.rule.valid(m2, f2, **trial):
                return key
    return None
