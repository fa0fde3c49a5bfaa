"""Atomic full-state checkpoints and exact resume.

A checkpoint holds everything that determines the rest of a run: the server state (model,
aggregates, momenta), the aggregator's state (e.g. the centered-clipping centre), every client's
state (gathered from its host rank), the number of rounds done (random streams are counter-based,
so that is the whole RNG state), the trace's table lengths, and the resolved config with its
fingerprint. It is written by rank 0 to a temporary file in the same folder, fsynced,
``os.replace``d over the previous one, and the folder is fsynced: a crash at any moment leaves
either the old or the new checkpoint, never a torn one.

Exit status :data:`REQUEUE_EXIT` means "stopped on request at a round boundary with a fresh
checkpoint: requeue me" (SIGTERM or SIGUSR1, e.g. Slurm's ``--signal=B:USR1@300``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from .errors import SetupError
from .statefile import read_state, write_state

#: exit status of a run stopped by SIGTERM/SIGUSR1 after checkpointing (EX_TEMPFAIL): requeue me
REQUEUE_EXIT = 75
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Header:
    path: Path
    rounds_done: int
    fingerprint: str
    trace_rows: dict[str, int]
    complete: bool


def read_header(path: Path) -> Header | None:
    """The checkpoint's header, or None when there is no checkpoint at ``path``."""
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r", locking=False) as f:
            a = f.attrs
            if int(a["format_version"]) != FORMAT_VERSION:
                raise SetupError(
                    f"checkpoint {path} has format {a['format_version']}, this byzmpi reads {FORMAT_VERSION}"
                )
            return Header(
                path,
                int(a["rounds_done"]),
                str(a["config_fingerprint"]),
                json.loads(a["trace_rows"]),
                bool(a["complete"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise SetupError(f"cannot read checkpoint {path}: {exc}; delete it or run with --fresh") from None


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
    aggregator: dict,
    clients: dict[int, Any],
) -> None:
    """Write a checkpoint atomically (temp file, fsync, os.replace, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
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


def load_server(path: Path, server_template: Any) -> tuple[Any, dict]:
    """(server state, aggregator state) from a checkpoint, shaped like the templates."""
    with h5py.File(path, "r", locking=False) as f:
        return read_state(f["server"], server_template), read_state(f["aggregator"], {})


def load_clients(path: Path, templates: dict[int, Any]) -> dict[int, Any]:
    """The states of the given clients (any subset: a host reads only its own)."""
    with h5py.File(path, "r", locking=False) as f:
        return {c: read_state(f["clients"][str(c)], t) for c, t in templates.items()}
