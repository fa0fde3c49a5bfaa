"""The analysis subcommands of ``byzmpi``: ``report`` (and, as they land, ``compare``, ``watch``).

``register(subparsers)`` adds them to the CLI; each sets ``func`` to its handler, which returns
the exit status. Heavy imports (pandas, matplotlib) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="summarise a trace")
    rep.add_argument("trace", type=Path)
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")
    rep.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    from ..errors import SetupError
    from .summary import format_summary, summarize

    if not args.trace.exists():
        raise SetupError(f"no trace at {args.trace}")
    s = summarize(args.trace)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0
