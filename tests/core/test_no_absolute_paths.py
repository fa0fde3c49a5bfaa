"""No tracked file names a path that exists only on some machine.

The rule (docs/design.md, "Data paths"): every text file that git tracks (``git ls-files``; a file
with a NUL byte in its first 8 KiB is binary and skipped) is searched for

* a development machine's folders: ``/work/...``, ``/root/...``, ``/home/USER/...``,
  ``/Users/USER/...``, and the team notes' ``../shared`` folder;
* ``/tmp/...``, except as scratch space that is created or overridable on the spot: a line that
  creates a temporary name (it also says ``mktemp``, ``tempfile`` or ``XXXXXX``), a lock file taken
  with ``flock``, the default of a shell variable (``${VAR:-/tmp/...}``) or the comment that
  documents that default (``default /tmp/...``), and ``.gitignore`` patterns (``/tmp/`` there is the
  repository's own folder).

A path counts only where it starts a path (not after a letter, digit or dot, so
``https://host/work/x`` and ``framework/`` do not match). Data files travel with the repository
(``data/``) and configs name them relative to the config file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_START = r"(?<![\w.~-])"  # a path starts here: not inside a word, a URL or a relative name
# built from pieces so that this file does not match itself
MACHINE = re.compile(
    _START + "(?:" + "/" + "work/" + "|/" + "root/" + r"|/home/[\w.-]+/|/Users/[\w.-]+/)" + r"|\.\./" + "shared"
)
TMP = re.compile(_START + "/" + "tmp/")
TMP_SCRATCH = re.compile(r"mktemp|tempfile|XXXXXX|\bflock /" + "tmp/" + r"|:-/" + "tmp/" + r"|default /" + "tmp/")


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:  # a source tree without git (an sdist)
        pytest.skip(f"git ls-files not available: {exc}")
    files = []
    for name in out.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file() or path == Path(__file__).resolve():
            continue  # deleted in the working tree, or a submodule; this file states the rule
        with open(path, "rb") as fh:
            if b"\0" in fh.read(8192):
                continue
        files.append(path)
    return files


def offending_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    rel = path.relative_to(ROOT).as_posix()
    bad = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if MACHINE.search(line):
            bad.append(f"{rel}:{lineno}: {line.strip()[:160]}")
        elif TMP.search(line) and not (TMP_SCRATCH.search(line) or path.name == ".gitignore"):
            bad.append(f"{rel}:{lineno}: {line.strip()[:160]}")
    return bad


def test_no_tracked_file_names_a_machine_path():
    files = tracked_text_files()
    assert len(files) > 50, "git ls-files found too few files: is this the repository?"
    bad = [line for path in files for line in offending_lines(path)]
    assert not bad, (
        "absolute machine paths in tracked files (name data relative to the config, ship it under data/, "
        "or use $BYZMPI_DATA; see docs/design.md, 'Data paths'):\n" + "\n".join(bad)
    )


@pytest.mark.parametrize(
    "line, flagged",
    [
        ('path = "/' + 'work/shared/data/a9a"', True),
        ("A9A = Path('/" + "root/data/a9a')", True),
        ("see ../" + "shared/notes", True),
        ("cp x /" + "home/alice/data/", True),
        ("--out /" + "tmp/r.json", True),
        ('path = "../../data/a9a"', False),
        ("https://example.org/" + "work/x", False),
        ("a framework/" + "work/ folder", False),
        ("BASE=$(mktemp -d /" + "tmp/ci.XXXXXX)", False),
        ("BASE=${SLURM_LOCAL_BASE:-/" + "tmp/slurm-local}", False),
        ("#   SLURM_LOCAL_BASE   default /" + "tmp/slurm-local", False),
        ("flock /" + "tmp/byzmpi-mpi.lock make test", False),
        ("cp /" + "tmp/x.lock data/", True),
    ],
)
def test_the_rule(tmp_path, monkeypatch, line, flagged):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    path = tmp_path / "f.txt"
    path.write_text(line + "\n")
    assert bool(offending_lines(path)) is flagged
