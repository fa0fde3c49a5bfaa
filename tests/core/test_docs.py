"""The docs in docs/ are current: the generated catalogue matches the registries, links between
pages resolve, and no file cites the team's notes that are not in the repository."""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REGENERATE = "byzmpi list --markdown > docs/catalogue.md"


def test_catalogue_page_is_current():
    """docs/catalogue.md is what ``byzmpi list --markdown`` prints (a fresh process: no plugin a
    test registered in this one can leak in)."""
    res = subprocess.run(
        [sys.executable, "-m", "byzmpi", "list", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    generated = res.stdout
    committed = (DOCS / "catalogue.md").read_text(encoding="utf-8")
    if generated != committed:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    generated.splitlines(keepends=True),
                    "docs/catalogue.md (committed)",
                    "byzmpi list --markdown (generated)",
                    n=1,
                )
            )[:80]
        )
        pytest.fail(
            "docs/catalogue.md is out of date with the registries; regenerate it from the repository root "
            f"with\n\n    {REGENERATE}\n\n(or .venv/bin/{REGENERATE}) and commit it. Difference:\n{diff}",
            pytrace=False,
        )


def test_catalogue_lists_every_registered_component():
    from byzmpi.catalogue import format_catalogue_markdown
    from byzmpi.compressors import COMPRESSORS
    from byzmpi.methods import METHODS

    text = format_catalogue_markdown()
    for name in [*METHODS, *COMPRESSORS]:
        assert f"### `{name}`" in text, name


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_resolve(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    missing = [
        target
        for target in LINK.findall(text)
        if "://" not in target and not target.startswith("mailto:") and not (DOCS / target).exists()
    ]
    assert not missing, f"docs/{page} links to missing files: {missing}"


def test_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert pages, "docs/ has no pages"
    assert not [p for p in pages if f"({p})" not in index], "docs/README.md must link every page"


# the team's working notes that the code once cited; the repository carries docs/ instead
NOTES = re.compile(r"\b(?:DESIGN|CONVENTIONS|ALGORITHMS|ENVIRONMENT|PERFORMANCE|SLURM|STYLE)\.md\b")


def test_no_file_cites_notes_outside_the_repository():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    if out.returncode != 0:
        pytest.skip("git ls-files not available")
    bad = []
    for name in out.stdout.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file() or name == "tests/core/test_docs.py":
            continue
        with open(path, "rb") as fh:
            head = fh.read(8192)
        if b"\0" in head:
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if NOTES.search(line):
                bad.append(f"{name}:{lineno}: {line.strip()[:140]}")
    assert not bad, "cite the page under docs/ instead (docs/README.md lists them):\n" + "\n".join(bad)


CITED_SECTION = re.compile(r"docs/([a-z]+\.md), [\"']([^\"']+)[\"']")


def test_cited_sections_exist():
    """A citation such as ``docs/design.md, "Threat models"`` names a heading of that page."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "byzmpi", "tests", "analysis", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    if out.returncode != 0:
        pytest.skip("git ls-files not available")
    headings: dict[str, set[str]] = {}
    for page in DOCS.glob("*.md"):
        lines = page.read_text(encoding="utf-8").splitlines()
        headings[page.name] = {line.lstrip("#").strip() for line in lines if line.startswith("#")}
    bad = []
    for name in out.stdout.decode().split("\0"):
        path = ROOT / name
        if not name.endswith(".py") or not path.is_file():
            continue
        for page, title in CITED_SECTION.findall(path.read_text(encoding="utf-8", errors="replace")):
            if title not in headings.get(page, set()):
                bad.append(f"{name}: docs/{page}, {title!r}")
    assert not bad, "cited sections missing from docs/:\n" + "\n".join(bad)
