"""Benchmark-only plugin for ``benchmarks/many_clients.py``: memory and timestamps of every rank.

Loaded through a config's ``run.plugins``, so every rank imports it once, while ``byzmpi run``
parses its configs (after ``MPI_Init`` and the imports of torch and byzmpi, before any setup). It
registers nothing and changes nothing in the run.

When ``BYZMPI_BENCH_RANKS`` names a folder, the plugin records, at import and again at exit
(an ``atexit`` handler, registered after mpi4py's, so it runs before ``MPI_Finalize``):

* ``time.time()`` (the driver compares it with its own launch time: same machine, same clock);
* ``VmRSS`` and ``VmHWM`` (peak resident set) from ``/proc/self/status``, in KiB;

and writes them as ``{folder}/rank{r}.json``. The rank ``r`` comes from the launcher's environment
(``OMPI_COMM_WORLD_RANK``, ``PMIX_RANK`` or ``PMI_RANK``), so the plugin needs no mpi4py import
(``byzmpi/comm/`` is the only mpi4py importer). Without the variable it does nothing.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path

RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")


def memory_kib() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process in KiB (empty where /proc is not Linux's)."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])  # "  123456 kB"
    except (OSError, ValueError):
        pass
    return out


def launcher_rank() -> int | None:
    for key in RANK_VARIABLES:
        if key in os.environ:
            return int(os.environ[key])
    return None


_FOLDER = os.environ.get("BYZMPI_BENCH_RANKS")
_AT_IMPORT = {"time": time.time(), **memory_kib()}


def _write() -> None:
    rank = launcher_rank()
    if not _FOLDER or rank is None:
        return
    record = {
        "rank": rank,
        "pid": os.getpid(),
        "import": _AT_IMPORT,
        "exit": {"time": time.time(), **memory_kib()},
    }
    path = Path(_FOLDER) / f"rank{rank}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


atexit.register(_write)
