"""Markdown tables and number formatting shared by reports and comparisons.

Numbers are written with 6 significant digits (``fmt``), so a reader (or a test) can parse a
table cell back and get the traced value to a relative 5e-6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING = "n/a"


def fmt(x: Any, digits: int = 6) -> str:
    """One table cell: ints as they are, floats with ``digits`` significant digits, NaN as n/a."""
    if x is None:
        return MISSING
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        v = float(x)
        if math.isnan(v):
            return MISSING
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}g}"
    if isinstance(x, tuple):
        return "[" + ", ".join(fmt(v) for v in x) + "]"
    return str(x).replace("|", "\\|")


def table(df: pd.DataFrame, columns: Sequence[str] | None = None, headers: Sequence[str] | None = None) -> str:
    """A DataFrame as a GitHub markdown table (``columns`` picks and orders, ``headers`` renames)."""
    columns = list(columns or df.columns)
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def parse_tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Every table of a markdown document, keyed by the nearest heading above it (suffixed
    ``#2``, ``#3`` when a heading has several tables): a list of {header: cell} rows."""
    out: dict[str, list[dict[str, str]]] = {}
    heading = ""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].strip().startswith("|---"):
            headers = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(dict(zip(headers, _cells(lines[i].strip()))))
                i += 1
            key, n = heading, 2
            while key in out:
                key, n = f"{heading}#{n}", n + 1
            out[key] = rows
            continue
        i += 1
    return out


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    cells, cur, esc = [], "", False
    for ch in inner:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def parse_number(cell: str) -> float:
    """A cell written by :func:`fmt` back as a float (n/a → NaN)."""
    cell = cell.strip()
    if cell == MISSING:
        return math.nan
    if cell in ("yes", "no"):
        return 1.0 if cell == "yes" else 0.0
    return float(cell.rstrip("%"))
