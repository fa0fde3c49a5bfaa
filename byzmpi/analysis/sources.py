"""Which trace files a command line names: files, globs, and sweep folders."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from ..errors import SetupError

TRACE_SUFFIXES = (".h5", ".hdf5")
_GLOB_CHARS = set("*?[")


def find_traces(specs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Resolve trace specs to files, in order, without duplicates.

    A spec is a trace file, a folder (every ``*.h5``/``*.hdf5`` below it, recursively, sorted:
    e.g. a Slurm job array's output folder) or a glob (``runs/sweep/*.h5``, ``runs/**/*.h5``).
    Raises :class:`SetupError` when a spec matches nothing.
    """
    if isinstance(specs, (str, Path)):
        specs = [specs]
    out: list[Path] = []
    seen: set[Path] = set()
    for spec in specs:
        text = str(spec)
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in TRACE_SUFFIXES and p.is_file())
        elif path.is_file():
            found = [path]
        elif _GLOB_CHARS & set(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        else:
            raise SetupError(f"no trace at {text}")
        if not found:
            raise SetupError(f"no trace matches {text}")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out
