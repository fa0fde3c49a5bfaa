"""Atomic full-state checkpoints and exact resume.

A checkpoint holds everything that determines the rest of a run: the server state (model,
aggregates, momenta), the aggregator's state (e.g. the centered-clipping centre), every client's
state (gathered from its host rank), the number of rounds done (random streams are counter-based,
so that is the whole RNG state), the trace's table lengths, and the resolved config with its
fingerprint. It is written by rank 0 to a temporary file in the same folder, fsynced,
``os.replace``d over the previous one, and the folder is fsynced: a crash at any moment leaves
either the old or the new checkpoint, never a torn one.

A checkpoint is read as hostile input: :func:`read_header` walks every link of the file and
refuses soft and external links, virtual datasets, external storage and chunked/filtered
datasets, and checks every header attribute's type and range (``rounds_done`` a non-negative
integer, ``complete`` a boolean, ``trace_rows`` non-negative integers per table, the ``rounds``
count equal to ``rounds_done``); :func:`load_server` and :func:`load_clients` read states into
templates, checking shapes and dtypes before reading and finiteness after. Every refusal is a
:class:`~byzmpi.errors.SetupError` naming the field (one line, exit status 2);
:func:`verify_checkpoint` runs the state checks at set-up, before any collective.

Temporary files of a write killed midway (``.NAME.XXXXXXXX.tmp`` next to the checkpoint) are
removed by the next write (:func:`remove_stale_temps`).

Exit status :data:`REQUEUE_EXIT` means "stopped on request at a round boundary with a fresh
checkpoint: requeue me" (SIGTERM or SIGUSR1, e.g. Slurm's ``--signal=B:USR1@300``).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .client_columns import ClientRows, read_columns, write_columns
from .errors import SetupError
from .statefile import StateFileError, check_dataset, check_node, read_state, show, tensors_of, write_state

#: exit status of a run stopped by SIGTERM/SIGUSR1 after checkpointing (EX_TEMPFAIL): requeue me
REQUEUE_EXIT = 75
#: version 2 stores the clients' states as columns (:mod:`.client_columns`) when they share one
#: layout; version 1 (one group per client, still written when layouts differ) is still read
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: the trace tables a checkpoint counts rows of (trace_rows)
TRACE_TABLES = ("rounds", "messages", "eval")
#: the longest header string attribute (characters): the resolved config's JSON
MAX_HEADER_STR = 1 << 20
#: the groups at a checkpoint's root
ROOT_GROUPS = ("aggregator", "clients", "server")
#: server-state tensors that may hold non-finite rows: per-client stores a Byzantine client can
#: overflow, which the method leaves out of the aggregation (DASHA's stored g_i); a method can
#: also declare such a field with ``dataclasses.field(metadata={"finite": False})``
NONFINITE_FIELDS = ("server/g_clients",)


@dataclass(frozen=True)
class Header:
    path: Path
    rounds_done: int
    fingerprint: str
    trace_rows: dict[str, int]
    complete: bool


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (HDF5's span several), at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(path: Path, exc: BaseException) -> SetupError:
    return SetupError(f"cannot read checkpoint {path}: {_one_line(exc)}; delete it or run with --fresh")


def _refusal(path: Path, field: str, problem: str) -> SetupError:
    return SetupError(f"checkpoint {path}: {field}: {problem}; delete it or run with --fresh")


def _attr(f: h5py.File, name: str) -> Any:
    if name not in f.attrs:
        raise StateFileError(name, "is missing")
    aid = f.attrs.get_id(name)
    if aid.shape != ():
        raise StateFileError(name, f"is an attribute of shape {aid.shape}, expected a scalar")
    value = f.attrs[name]
    if isinstance(value, str) and len(value) > MAX_HEADER_STR:
        raise StateFileError(name, f"is a string of {len(value)} characters (at most {MAX_HEADER_STR})")
    return value


def _integer(f: h5py.File, name: str) -> int:
    value = _attr(f, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise StateFileError(name, f"is {show(value)}, expected an integer")
    if value < 0:
        raise StateFileError(name, f"is {int(value)}, expected a non-negative integer")
    return int(value)


def _text(f: h5py.File, name: str) -> str:
    value = _attr(f, name)
    if not isinstance(value, str):
        raise StateFileError(name, f"is {show(value)}, expected a string")
    return value


def _trace_rows(text: str) -> dict[str, int]:
    try:
        rows = json.loads(text)
    except ValueError:
        raise StateFileError("trace_rows", "is not JSON") from None
    if not isinstance(rows, dict) or set(rows) != set(TRACE_TABLES):
        raise StateFileError("trace_rows", f"must map exactly {', '.join(TRACE_TABLES)} to row counts")
    for name in TRACE_TABLES:
        n = rows[name]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise StateFileError(f"trace_rows.{name}", f"is {n!r}, expected a non-negative integer")
    return {name: rows[name] for name in TRACE_TABLES}


def check_structure(f: h5py.File) -> None:
    """Refuse anything in the file that could read outside it: soft or external links (anywhere,
    not only where this rank reads), virtual datasets, external storage; and the wrong root."""

    def visit(name: str, link: Any) -> StateFileError | None:  # a non-None result stops the walk
        if isinstance(link, h5py.SoftLink):
            return StateFileError(name, f"is a soft link (to {link.path!r}); byzmpi writes none")
        if isinstance(link, h5py.ExternalLink):
            return StateFileError(name, f"is an external link (to {link.filename!r}); byzmpi follows none")
        if not isinstance(link, h5py.HardLink):
            return StateFileError(name, "is a link of an unknown kind; byzmpi follows none")
        node = f[name]
        if isinstance(node, h5py.Dataset):
            try:
                check_dataset(node, name)
            except StateFileError as exc:
                return exc
        return None

    problem = f.visititems_links(visit)  # exceptions do not cross h5py's visit callback cleanly
    if problem is not None:
        raise problem
    for name in f:
        if name not in ROOT_GROUPS:
            raise StateFileError(name, f"is not part of a checkpoint (expected {', '.join(ROOT_GROUPS)})")
    for name in ROOT_GROUPS:
        if name not in f:
            raise StateFileError(name, "is missing")
        if not isinstance(check_node(f, name), h5py.Group):
            raise StateFileError(name, "is a dataset, expected a group")


def _header(path: Path, f: h5py.File) -> Header:
    version = _attr(f, "format_version")
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise StateFileError("format_version", f"is {show(version)}, expected an integer")
    if int(version) not in READABLE_VERSIONS:
        raise SetupError(
            f"checkpoint {path} has format {version}, this byzmpi reads {', '.join(map(str, READABLE_VERSIONS))}"
        )
    check_structure(f)
    rounds_done = _integer(f, "rounds_done")
    fingerprint = _text(f, "config_fingerprint")
    _text(f, "config")
    trace_rows = _trace_rows(_text(f, "trace_rows"))
    if trace_rows["rounds"] != rounds_done:
        raise StateFileError(
            "trace_rows.rounds", f"is {trace_rows['rounds']}, but rounds_done is {rounds_done} (one row per round)"
        )
    if trace_rows["eval"] > rounds_done + 1:
        raise StateFileError("trace_rows.eval", f"is {trace_rows['eval']}, more than rounds_done + 1 evaluations")
    complete = _attr(f, "complete")
    if not isinstance(complete, (bool, np.bool_)):
        raise StateFileError("complete", f"is {show(complete)}, expected a boolean (true/false)")
    return Header(path, rounds_done, fingerprint, trace_rows, bool(complete))


def _open(path: Path) -> h5py.File:
    return h5py.File(path, "r", locking=False)


def read_header(path: Path) -> Header | None:
    """The checkpoint's header, or None when there is no checkpoint at ``path``; refuses a file
    whose structure or header is not one byzmpi writes (SetupError naming the field)."""
    if not path.exists():
        return None
    if not path.is_file():
        raise SetupError(f"checkpoint {path} is not a file; remove it or change checkpoint.path")
    try:
        with _open(path) as f:
            return _header(path, f)
    except StateFileError as exc:
        raise _refusal(path, exc.field, exc.problem) from None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise _unreadable(path, exc) from None


def check_trace(header: Header, trace_path: Path) -> None:
    """Refuse to resume when the trace holds fewer rows than the checkpoint covers."""
    from .trace import open_trace

    try:
        with open_trace(trace_path) as t:
            for name, want in header.trace_rows.items():
                have = int(t[name].shape[0]) if name in t and isinstance(t[name], h5py.Dataset) else 0
                if have < want:
                    raise SetupError(
                        f"checkpoint {header.path}: trace_rows.{name}: the checkpoint covers {want} rows but the trace "
                        f"{trace_path} holds {have}; run with --fresh to start again"
                    )
    except OSError as exc:
        raise SetupError(f"cannot read the trace {trace_path} to resume: {_one_line(exc)}; run with --fresh") from None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(
    path: Path,
    *,
    config_json: str,
    fingerprint: str,
    rounds_done: int,
    trace_rows: dict[str, int],
    complete: bool,
    server: Any,
    aggregator: dict[str, Any],
    clients: dict[int, Any] | ClientRows,
) -> None:
    """Write a checkpoint atomically (temp file, fsync, os.replace, fsync the folder); first
    removes the temp files an earlier write of this path left when it was killed.

    ``clients``: the packed states of every client (as rank 0 gathers them), or the states
    themselves. States that share one layout are stored as columns, others one group per client."""
    rows = ClientRows.from_states(clients) if isinstance(clients, dict) else clients
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(
                {
                    "format_version": FORMAT_VERSION,
                    "rounds_done": rounds_done,
                    "config": config_json,
                    "config_fingerprint": fingerprint,
                    "trace_rows": json.dumps(trace_rows),
                    "complete": complete,
                }
            )
            write_state(f.create_group("server"), server)
            write_state(f.create_group("aggregator"), aggregator)
            group = f.create_group("clients")
            if rows is not None:
                write_columns(group, rows)
            else:
                assert isinstance(clients, dict)
                for client, state in sorted(clients.items()):
                    write_state(group.create_group(str(client)), state)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files of earlier, killed writes of the checkpoint ``path``: regular files
    next to it named ``.{path.name}.XXXXXXXX.tmp`` (tempfile's 8-character name), nothing else.
    Call it only where no other writer of this path runs (rank 0, before writing). Returns what
    was removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _load(path: Path, read: Any) -> Any:
    try:
        with _open(path) as f:
            return read(f)
    except StateFileError as exc:
        raise _refusal(path, exc.field, exc.problem) from None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise _unreadable(path, exc) from None


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    if name not in parent:
        raise StateFileError(f"{parent.name.strip('/')}/{name}".lstrip("/"), "is missing")
    node = check_node(parent, name)
    if not isinstance(node, h5py.Group):
        raise StateFileError(node.name.lstrip("/"), "is a dataset, expected a group")
    return node


def _read_server(f: h5py.File, server_template: Any) -> tuple[Any, dict[str, Any]]:
    largest = max((t.numel() for t in tensors_of(server_template)), default=0)
    server = read_state(_group(f, "server"), server_template, nonfinite=NONFINITE_FIELDS)
    return server, read_state(_group(f, "aggregator"), {}, free_max_numel=largest)


def _read_clients(f: h5py.File, templates: dict[int, Any]) -> dict[int, Any]:
    clients = _group(f, "clients")
    if "ids" in clients:  # columns (format 2)
        return read_columns(clients, templates)
    return {c: read_state(_group(clients, str(c)), t) for c, t in templates.items()}


def load_server(path: Path, server_template: Any) -> tuple[Any, dict[str, Any]]:
    """(server state, aggregator state) from a checkpoint, shaped like the templates (the
    aggregator's tensors no larger than the server state's largest)."""
    loaded: tuple[Any, dict[str, Any]] = _load(path, lambda f: _read_server(f, server_template))
    return loaded


def load_clients(path: Path, templates: dict[int, Any]) -> dict[int, Any]:
    """The states of the given clients (any subset: a host reads only its own)."""
    clients: dict[int, Any] = _load(path, lambda f: _read_clients(f, templates))
    return clients


def verify_checkpoint(path: Path, server_template: Any | None, client_templates: dict[int, Any]) -> None:
    """Read and check what this rank will load (the server's part when ``server_template`` is
    given, the listed clients), so that a bad checkpoint is refused at set-up with one line."""
    _load(
        path,
        lambda f: (
            _read_server(f, server_template) if server_template is not None else None,
            _read_clients(f, client_templates),
        ),
    )
