"""Where a data file named in a config is looked for (``task.path``).

The rule, the same for a path written in the TOML file and one given with ``--set task.path=...``:

1. ``~`` and ``~user`` are expanded.
2. An absolute path is used as it is.
3. A relative path is looked up relative to the folder of the config file (``base``), the rule
   ``run.plugins`` files follow too; when that file does not exist and the environment variable
   ``BYZMPI_DATA`` names a folder, relative to that folder.
4. When neither exists, the config-relative path is returned, so that the error that follows names
   the place the config points to. Without a config file (``base is None``: a config built in
   Python) "the config's folder" is the working folder.

Output paths (``run.trace``, ``checkpoint.path``) are not resolved here: they stay relative to the
working folder, where the job runs.

The result is absolute and normalised (``Path.resolve``), so a resolved config records the file
that was read wherever the job was started from.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

DATA_ENV = "BYZMPI_DATA"


def data_path_candidates(value: str | os.PathLike[str], base: Path | None) -> list[Path]:
    """The places :func:`resolve_data_path` tries, in order (one for an absolute path)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return [path]
    candidates = [(Path(base) if base is not None else Path.cwd()) / path]
    folder = os.environ.get(DATA_ENV, "")
    if folder:
        candidates.append(Path(folder).expanduser() / path)
    return candidates


def resolve_data_path(value: str | os.PathLike[str], base: Path | None) -> Path:
    """The data file ``value`` names, from a config file in folder ``base``: ``value`` when absolute,
    else ``base / value`` when it exists, else ``$BYZMPI_DATA / value`` when that exists, else
    ``base / value`` (the module docstring states the rule in full). Pure apart from the file-system
    checks and the one environment variable; never raises for a missing file."""
    candidates = data_path_candidates(value, base)
    chosen = next((p for p in candidates if p.exists()), candidates[0])
    return chosen.resolve()


def content_digest(path: str | os.PathLike[str]) -> str:
    """A location-independent stand-in for a data path in a config fingerprint: the SHA-256 of the
    file's bytes, or for a folder of the sorted (relative name, file digest) pairs of every file
    under it; ``missing:<name>`` when nothing is there (the run then fails at data loading anyway).

    So a clone moved to another folder, or the same data file under ``$BYZMPI_DATA`` on a cluster,
    gives the same fingerprint and its checkpoints resume, while an edited data file does not
    (docs/design.md, "Stop, checkpoint, resume"). Cached per (path, size, mtime): the fingerprint is taken
    several times per run."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return f"missing:{p.name}"
    return _digest(str(p.resolve()), st.st_size, st.st_mtime_ns, p.is_dir())


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int, folder: bool) -> str:
    h = hashlib.sha256()
    if not folder:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    root = Path(path)
    for file in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(file.relative_to(root)).encode() + b"\0" + content_digest(file).encode() + b"\n")
    return h.hexdigest()


#: pseudo file systems a trace or checkpoint can never be written to
PSEUDO_FS = (Path("/proc"), Path("/sys"), Path("/dev"))
NAME_MAX = 255  # bytes per path component on the file systems byzmpi runs on


def output_path_problem(path: Path) -> str | None:
    """Why a run could not write the file ``path`` (a trace or checkpoint), or None: checked
    before launch, so that a bad path is one line at start-up, not an MPI_Abort after the first
    rounds. Creates nothing."""
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            return f"a path component is {len(os.fsencode(part))} bytes long (at most {NAME_MAX})"
    resolved = path.resolve()
    if any(resolved == fs or fs in resolved.parents for fs in PSEUDO_FS):
        return f"{resolved} is on a pseudo file system"
    if resolved.is_dir():
        return "it is a directory"
    if resolved.exists() and not os.access(resolved, os.W_OK):
        return "the file exists and is not writable"
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"the folder {ancestor} is not writable"
    return None
