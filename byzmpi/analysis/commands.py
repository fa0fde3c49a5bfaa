"""The analysis subcommands of ``byzmpi``: ``report``, ``compare``, ``watch`` and ``mark-interrupted``.

``register(subparsers)`` adds them to the CLI; each sets ``func`` to its handler, which returns
the exit status. Heavy imports (pandas, matplotlib) happen inside the handlers, so ``byzmpi run``
never pays for them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

METRIC_CHOICES = ("gap", "accuracy", "loss", "grad_norm_sq")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser("report", help="summarise a trace; with --out, a folder of figures and markdown")
    rep.add_argument("trace", type=Path)
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")
    rep.add_argument("--out", type=Path, default=None, help="write DIR/report.md, DIR/summary.json and PNG figures")
    _last_k(rep)
    rep.set_defaults(func=report)

    cmp = sub.add_parser("compare", help="compare the traces of a sweep: heatmaps, worst cases, ranking, curves")
    cmp.add_argument("traces", nargs="+", help="trace files, folders (searched recursively) or globs")
    cmp.add_argument("--out", type=Path, default=None, help="write DIR/compare.md, CSV tables and PNG figures")
    cmp.add_argument(
        "--metric",
        action="append",
        choices=METRIC_CHOICES,
        default=None,
        help="final metric to compare (repeatable; the first ranks; default: gap and accuracy "
        "when the traces know f*, else accuracy and loss)",
    )
    cmp.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="runs whose curves are overlaid (repeatable, all must match; e.g. attack.name=alie); "
        "default: the worst-case cell of each defence",
    )
    cmp.add_argument(
        "--band",
        choices=("minmax", "std", "none"),
        default="minmax",
        help="around each replicate-mean curve and worst-case bar: min-max (default), ± one std, or nothing",
    )
    _last_k(cmp)
    cmp.set_defaults(func=compare)

    w = sub.add_parser("watch", help="follow a running job from its trace")
    w.add_argument("trace", type=Path)
    w.add_argument("--once", action="store_true", help="print one snapshot and exit")
    w.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    w.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 124)")
    w.add_argument(
        "--stale",
        type=float,
        default=None,
        help="exit 3 when no round arrives for this many seconds (a killed job never marks its trace)",
    )
    w.set_defaults(func=watch)

    mi = sub.add_parser(
        "mark-interrupted",
        help="mark the trace of a dead job 'interrupted' and clear its open-for-write flag (plain h5py opens it then)",
    )
    mi.add_argument("trace", type=Path)
    mi.add_argument("--force", action="store_true", help="also when the trace was written in the last 60 s")
    mi.set_defaults(func=mark_interrupted)


def _last_k(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--last-k",
        type=int,
        default=1,
        metavar="K",
        help="final metric = the mean of a run's last K evaluations (default 1: the last one)",
    )


def _headless() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")


def report(args: argparse.Namespace) -> int:
    from ..errors import SetupError

    if not args.trace.exists():
        raise SetupError(f"no trace at {args.trace}")
    if args.out is None:
        from .summary import format_summary, summarize

        s = summarize(args.trace)
        print(json.dumps(s, indent=2) if args.json else format_summary(s))
        return 0
    _headless()
    from . import report as R

    rep = R.build(args.trace, args.out, last_k=args.last_k)
    if args.json:
        print(json.dumps(R.to_json(rep), indent=2, default=R._json_default))
    else:
        figs = ", ".join(f.path.name for f in rep.figures.values())
        print(f"report: {args.out / 'report.md'} ({len(rep.tables)} tables; figures: {figs})")
        for note in rep.notes.values():
            print(f"note: {note}")
    return 0


def compare(args: argparse.Namespace) -> int:
    _headless()
    from . import compare as C

    comp = C.build(args.traces, args.out, metrics=args.metric, select=args.select, band=args.band, last_k=args.last_k)
    if args.out is None:
        print(C.format_text(comp))
    else:
        print(
            f"compare: {args.out / 'compare.md'} ({len(comp.sweep.runs)} runs; swept: "
            f"{', '.join(comp.sweep.swept) or 'nothing'}; figures: "
            f"{', '.join(p.name for p, _ in comp.figures.values())})"
        )
    return 0


def watch(args: argparse.Namespace) -> int:
    from .watch import follow

    try:
        return follow(args.trace, interval=args.interval, once=args.once, timeout=args.timeout, stale=args.stale)
    except KeyboardInterrupt:
        return 130


def mark_interrupted(args: argparse.Namespace) -> int:
    from .repair import mark_interrupted as mark

    print(mark(args.trace, force=args.force).line())
    return 0
