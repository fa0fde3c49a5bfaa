"""The config schema: typed sections and their declared fields. Imports no catalogue.

A resolved :class:`Config` is what every layer reads: sections ``run``, ``clients``, ``task``,
``checkpoint`` and ``debug`` have fixed fields (declared below as :class:`~byzmpi.params.Param`);
``method``, ``aggregator``, ``attack`` and ``compressor`` name a catalogue entry and carry its
resolved parameters (:class:`Component`), with the section's own typed fields
(:class:`AggregatorChoice`: ``f``; :class:`AttackChoice`: ``threat_model``, ``space``).
Loading, overrides, plugins and validation against the catalogues are the loader's job
(:mod:`byzmpi.config`); turning a config into a run is :mod:`byzmpi.assembly`'s.

Names and paths (docs/design.md, "Names and paths"): ``run.name`` is 1–128 characters from
letters, digits, ``.``, ``_``, ``+`` and ``-``, not starting with ``.`` (so it cannot climb out of the
trace folder); ``run.trace`` and ``checkpoint.path`` may use exactly the placeholders ``{name}``
and ``{seed}`` (no attribute, index, conversion or format spec).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .params import Param
from .paths import content_digest

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
        Param(
            "receive",
            str,
            "auto",
            "how the server receives messages: gatherv (one collective, trusts each sender's length), "
            "checked (matched probe per member: a wrong-length message is rejected, never written past "
            "the buffer), auto (checked when Byzantine clients compute their own messages, local threat model)",
            choices=("auto", "gatherv", "checked"),
        ),
        Param(
            "device",
            str,
            "cpu",
            "where each rank computes: cpu, cuda (GPU local_rank mod visible GPUs; none visible is an error), "
            "auto (cuda when visible)",
            choices=("cpu", "cuda", "auto"),
        ),
        Param(
            "cuda_aware",
            str,
            "auto",
            "hand device buffers to MPI: yes (an error if the MPI library cannot), no (stage through pinned "
            "host buffers), auto (when the library reports CUDA support)",
            choices=("auto", "yes", "no"),
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

#: task.name values; the file formats read task.path, torch reads task.data
DATASETS = ("synthetic", "libsvm", "digits", "mnist", "fashion_mnist", "cifar10", "npz", "csv", "torch")
FILE_DATASETS = ("libsvm", "mnist", "fashion_mnist", "cifar10", "npz", "csv")
BUILTIN_MODELS = ("logreg", "softmax", "mlp", "lightnet", "lenet5", "resnet18")

TASK = {
    p.name: p
    for p in [
        Param(
            "name",
            str,
            "synthetic",
            "dataset: synthetic, digits (scikit-learn), files (libsvm, mnist, "
            "fashion_mnist, cifar10, npz, csv), or torch (your own: task.data)",
            choices=DATASETS,
        ),
        Param(
            "path",
            str,
            None,
            "the data file or folder (libsvm/npz/csv file; mnist/fashion_mnist: the folder of IDX files, plain or "
            ".gz; cifar10: the cifar-10-batches-py folder), relative to the config's folder or $BYZMPI_DATA",
            nullable=True,
        ),
        Param(
            "data",
            str,
            None,
            "task.name = torch: 'module:function' or 'file.py:function' returning a Dataset, a torch Dataset, "
            "(X, y) or (X, y, X_test, y_test)",
            nullable=True,
        ),
        Param("label_column", int, -1, "csv: the label's column (negative: from the end)"),
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
            "logreg (binary), softmax, mlp, lightnet / lenet5 (28x28x1 CNNs), resnet18 (32x32x3, CIFAR stem), or "
            "'module:factory' / 'file.py:factory' (your own torch nn.Module factory); default: lightnet for "
            "MNIST files, resnet18 for CIFAR-10, logreg for binary data, softmax otherwise",
            nullable=True,
        ),
        Param(
            "norm", str, "group", "resnet18: group, layer or batch normalisation", choices=("group", "layer", "batch")
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
            "held-out share for data without a test split of its own (default 0.2; libsvm 0); a file's own "
            "test split (MNIST t10k, CIFAR-10 test_batch, npz X_test/y_test) is used instead",
            minimum=0.0,
            maximum=0.9,
            nullable=True,
        ),
        Param("seed", int, None, "data seed (default: run.seed)", minimum=0, nullable=True),
        Param(
            "init",
            str,
            "model",
            "x^0: model (the model's own seeded init), zeros, normal (N(0, init_scale^2) per coordinate, "
            "seeded), optimum (x* + init_scale*1, x* from full-batch L-BFGS on the honest objective, as the "
            "Byz-DASHA-PAGE experiments start)",
            choices=("model", "zeros", "normal", "optimum"),
        ),
        Param("init_scale", float, 1.0, "std of init = normal; shift c of init = optimum (x* + c*1)"),
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
        Param("wire_rank", int, -1, "this host rank sends payloads of a wrong length (tests of the checked receive)"),
        Param("wire_extra", int, 0, "... with this many floats more (negative: fewer)"),
    ]
}

THREAT_MODELS = ("omniscient", "local")
#: where an attack acts: ``estimator`` (the vector the rule aggregates), ``message`` (what travels)
ATTACK_SPACES = ("auto", "estimator", "message")

AGGREGATOR_FIELDS = {
    "f": Param("f", int, None, "Byzantine inputs to tolerate (default clients.byzantine)", minimum=0, nullable=True),
}
ATTACK_FIELDS = {
    "threat_model": Param("threat_model", str, "omniscient", "who builds Byzantine messages", choices=THREAT_MODELS),
    "space": Param(
        "space",
        str,
        "auto",
        "where the attack acts: estimator (the vector the rule aggregates: g^k + Q(Delta_i) for MARINA, "
        "g_i for DASHA, the momentum for RoSDHB), message (what travels), auto (estimator for the "
        "variance-reduced methods)",
        choices=ATTACK_SPACES,
    ),
}

RUN_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}")
PATH_FIELDS = ("name", "seed")


def check_run_name(name: str) -> None:
    """Refuse a ``run.name`` that could escape the trace folder or break a file system."""
    if not RUN_NAME.fullmatch(name):
        raise ConfigError(
            "run.name",
            f"must be 1-128 characters of letters, digits, '.', '_', '+' and '-', not starting with '.' (got {name!r})",
        )


def format_path(template: str, *, name: str, seed: int) -> str:
    """``template`` with ``{name}`` and ``{seed}`` substituted; any other replacement field (an
    attribute, an index, a conversion, a format spec, another name) is a ValueError."""
    out = []
    for literal, fieldname, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        if fieldname is None:
            continue
        if fieldname not in PATH_FIELDS or spec or conversion:
            shown = "{" + fieldname + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise ValueError(f"{shown} is not a placeholder; use {{name}} or {{seed}}")
        out.append(name if fieldname == "name" else str(seed))
    return "".join(out)


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

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Section({self._values!r})"


@dataclass(frozen=True)
class Component:
    """A catalogue choice: its name, its resolved parameters and (for the aggregator) the
    pre-aggregators in order with their parameters."""

    name: str
    params: Section
    pre: tuple[tuple[str, Section], ...] = ()

    def fields(self) -> dict[str, Any]:
        """The section's own typed fields (none here)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **self.fields(), **self.params}
        if self.pre:
            out["pre"] = [p for p, _ in self.pre]
            out.update({p: dict(params) for p, params in self.pre})
        return out


@dataclass(frozen=True)
class AggregatorChoice(Component):
    """The aggregator: rule, pre-aggregators, and ``f``, the Byzantine inputs it tolerates."""

    f: int = 0

    def fields(self) -> dict[str, Any]:
        return {"f": self.f}


@dataclass(frozen=True)
class AttackChoice(Component):
    """The attack and its threat model (``omniscient``: built by the server from the honest
    messages; ``local``: built by the Byzantine ranks themselves)."""

    threat_model: str = "omniscient"
    space: str = "auto"

    def fields(self) -> dict[str, Any]:
        return {"threat_model": self.threat_model, "space": self.space}


@dataclass(frozen=True)
class Config:
    run: Section
    clients: Section
    task: Section
    method: Component
    aggregator: AggregatorChoice
    attack: AttackChoice
    debug: Section
    checkpoint: Section
    compressor: Component

    def to_dict(self) -> dict[str, Any]:
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
            "receive",
        ):
            d["run"].pop(key, None)
        d.pop("debug")
        d.pop("checkpoint")
        task = d["task"]  # data named by where it is would tie a checkpoint to one folder: name it by content
        if task.get("path"):
            task["path"] = content_digest(task["path"])
        for key in ("model", "data"):
            spec = task.get(key)
            if spec and ":" in spec and spec.partition(":")[0].endswith(".py"):
                file, _, attr = spec.partition(":")
                task[key] = f"{content_digest(file)}:{attr}"
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def byzantine_ids(self) -> list[int]:
        return list(self.clients.byzantine_ids)

    @property
    def trace_path(self) -> Path:
        return Path(format_path(self.run.trace, name=self.run.name, seed=self.run.seed))

    @property
    def checkpoint_path(self) -> Path:
        return Path(format_path(self.checkpoint.path, name=self.run.name, seed=self.run.seed))
