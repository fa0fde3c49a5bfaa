"""``byzmpi mark-interrupted TRACE``: make the trace of a dead job readable by plain h5py and say so.

A job killed while its rank 0 writes the trace (SIGKILL, node failure, out-of-memory) leaves the
file with HDF5's "open for write" status flags set and ``status = "running"``. byzmpi's readers
open such a file anyway (SWMR read, no file lock: :func:`byzmpi.trace.open_trace`), but a plain
``h5py.File(path, "r")`` refuses it ("file is already open for write"), and nothing tells a dead
trace from a live one except that it stops growing.

:func:`mark_interrupted` clears the flags the way ``h5clear -s`` does (HDF5's
``clear_status_flags`` file-access property, set through the libhdf5 that h5py itself loaded),
or, where that library cannot be reached, rewrites the file from an SWMR read into a fresh one
(``os.replace``, so a crash leaves the old file); then it sets ``status = "interrupted"``,
``rounds_done`` (the rows of the rounds table) and ``interrupted_at``. It refuses a trace that is
finished or failed, and one written less than ``min_age`` seconds ago (its writer may be alive;
``force`` overrides).
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
from h5py import h5f, h5p

from ..errors import SetupError
from ..trace import open_trace

#: a trace written more recently than this (seconds) may still have a live writer
MIN_AGE = 60.0
FINAL = ("finished", "failed")


@dataclass(frozen=True)
class Repair:
    path: Path
    previous_status: str
    rounds: int
    how: str  # "cleared" (status flags cleared in place), "rewritten" (copied into a fresh file), "unchanged"

    def line(self) -> str:
        if self.how == "unchanged":
            return f"{self.path}: already interrupted ({self.rounds} rounds); nothing to do"
        return (
            f"{self.path}: status {self.previous_status} -> interrupted after {self.rounds} rounds "
            f"({'write flags cleared' if self.how == 'cleared' else 'rewritten into a clean file'}); "
            "plain h5py.File(path, 'r') opens it now"
        )


def _hdf5_library() -> ctypes.CDLL | None:
    """The libhdf5 that h5py's extension modules loaded (so that property lists are shared)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.rsplit(None, 1)[-1] if "/" in line else ""
        name = os.path.basename(path)
        if name.startswith("libhdf5") and not name.startswith("libhdf5_hl") and ".so" in name:
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


def _open_clearing_flags(path: Path) -> h5py.File | None:
    """The file opened read-write with its status flags cleared and its end of allocation moved
    to the end of the file (``h5clear -s -i 0``: a killed writer's superblock records an EOA
    short of the data it flushed, and closing the file would truncate it there), or None."""
    lib = _hdf5_library()
    if lib is None or not all(hasattr(lib, name) for name in ("H5Pset", "H5Fincrement_filesize")):
        return None
    fapl = h5p.create(h5p.FILE_ACCESS)
    try:
        fapl.set_file_locking(False, True)
    except (AttributeError, ValueError, RuntimeError):
        pass
    lib.H5Pset.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.c_void_p]
    lib.H5Pset.restype = ctypes.c_int
    flag = ctypes.c_bool(True)
    if lib.H5Pset(fapl.id, b"clear_status_flags", ctypes.byref(flag)) < 0:
        return None
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDWR, fapl)
    except (OSError, ValueError, RuntimeError):
        return None
    lib.H5Fincrement_filesize.argtypes = [ctypes.c_int64, ctypes.c_uint64]
    lib.H5Fincrement_filesize.restype = ctypes.c_int
    if lib.H5Fincrement_filesize(fid.id, 0) < 0:
        raise SetupError(
            f"trace {path}: HDF5 could not extend its end of allocation; copy the file before repairing it"
        )
    return h5py.File(fid)


def _rewrite(path: Path) -> None:
    """Copy every object and attribute into a fresh file next to ``path``, then replace it."""
    tmp = path.with_name(f".{path.name}.repair.tmp")
    try:
        with open_trace(path) as old, h5py.File(tmp, "w", libver="latest") as new:
            for key, value in old.attrs.items():
                new.attrs[key] = value
            for name in old:
                old.copy(old[name], new, name=name)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _status(path: Path) -> tuple[str, int]:
    with open_trace(path) as f:
        status = f.attrs.get("status", "unknown")
        status = status.decode() if isinstance(status, bytes) else str(status)
        return status, int(f["rounds"].shape[0]) if "rounds" in f else 0


def _plain_open_works(path: Path) -> bool:
    try:
        with h5py.File(path, "r", locking=False):
            return True
    except OSError:
        return False


def mark_interrupted(
    path: str | Path, *, force: bool = False, min_age: float = MIN_AGE, clock: Callable[[], float] = time.time
) -> Repair:
    """Clear a dead trace's open-for-write flags and mark it ``interrupted`` (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"no trace at {path}")
    try:
        status, rounds = _status(path)
    except (OSError, KeyError) as exc:
        raise SetupError(f"cannot read the trace {path}: {' '.join(str(exc).split())[:200]}") from None
    if status in FINAL:
        raise SetupError(f"trace {path} is {status}, not interrupted; nothing to do")
    if status == "interrupted" and _plain_open_works(path):
        return Repair(path, status, rounds, "unchanged")
    age = clock() - path.stat().st_mtime
    if age < min_age and not force:
        raise SetupError(
            f"trace {path} was written {age:.0f} s ago: its job may still be running; "
            f"wait {min_age:.0f} s after its last write, or pass --force"
        )
    f = _open_clearing_flags(path)
    how = "cleared"
    if f is None:
        _rewrite(path)
        f, how = h5py.File(path, "r+", locking=False), "rewritten"
    with f:
        f.attrs["status"] = "interrupted"
        f.attrs["rounds_done"] = rounds
        f.attrs["interrupted_at"] = clock()
    _check_readable(path, rounds)
    return Repair(path, status, rounds, how)


def _check_readable(path: Path, rounds: int) -> None:
    """Plain h5py reads every table of the repaired trace in full, with the rounds it had."""
    try:
        with h5py.File(path, "r") as f:
            for name in f:
                if isinstance(f[name], h5py.Dataset):
                    f[name][...]
            have = int(f["rounds"].shape[0]) if "rounds" in f else 0
    except OSError as exc:
        raise SetupError(f"trace {path}: unreadable after repair: {' '.join(str(exc).split())[:200]}") from None
    if have != rounds:
        raise SetupError(f"trace {path}: {have} rounds after repair, {rounds} before")
