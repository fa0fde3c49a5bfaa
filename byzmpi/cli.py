"""Command line: ``byzmpi run | validate | grid | report | compare | watch | list``.

``run`` is an SPMD program: launch it as ``mpiexec -n P python -m mpi4py -m byzmpi run CONFIG``
(``python -m mpi4py`` turns an exception on any rank into MPI_Abort instead of a hang), or let
``byzmpi run -n P CONFIG`` start that command with the venv's own ``mpiexec``.
Errors a user can fix print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from . import grid
from .errors import ByzmpiError, ConfigError
from .launch import mpi_env, mpiexec_command, under_mpi_launcher


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="byzmpi", description="Byzantine-robust distributed training over MPI.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one or more configs (SPMD, under mpiexec)")
    run.add_argument(
        "configs",
        nargs="+",
        type=Path,
        help="TOML configs, grid files or folders (byzmpi.grid), run one after the other",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config field (repeatable)",
    )
    run.add_argument(
        "-n", "--np", type=int, default=None, help="start the job with this many ranks through the venv's mpiexec"
    )
    run.add_argument("--json", action="store_true", help="print each run's summary as one JSON line")
    run.add_argument(
        "--group-size",
        type=int,
        default=None,
        metavar="Q",
        help="pack the runs: split the P ranks into P/Q groups of Q that run their share of the runs concurrently",
    )
    run.add_argument(
        "--keep-going", action="store_true", help="a run that fails at setup is reported and the next one runs"
    )
    run.add_argument(
        "--skip-finished", action="store_true", help="skip runs whose trace says they finished (default when packed)"
    )
    grid.add_arguments(run)
    resume = run.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue from the checkpoint (fail without one)")
    resume.add_argument("--fresh", action="store_true", help="ignore any checkpoint and start from round 0")

    val = sub.add_parser("validate", help="check a config without running it")
    val.add_argument("config", type=Path)
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    val.add_argument("--ranks", type=int, default=None, help="also check that P ranks can run it")
    val.add_argument("--print", dest="show", action="store_true", help="print the resolved config as JSON")

    from .analysis import commands as analysis_commands

    analysis_commands.register(sub)
    grid.register(sub)

    lst = sub.add_parser("list", help="list methods, aggregation rules and attacks with their parameters")
    lst.add_argument("--markdown", action="store_true", help="print docs/catalogue.md (the catalogue as Markdown)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "run" and hasattr(signal, "SIGPIPE"):
        # a reader that stops early (`byzmpi report ... | head`) ends us quietly, as for any Unix tool
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "validate":
            return _validate(args)
        if hasattr(args, "func"):
            return int(args.func(args))
        if args.command == "list":
            from .catalogue import format_catalogue, format_catalogue_markdown

            sys.stdout.write(format_catalogue_markdown() if args.markdown else format_catalogue() + "\n")
            return 0
    except ByzmpiError as exc:
        print(exc.line(), file=sys.stderr, flush=True)
        return exc.exit_code
    return 2  # pragma: no cover


def _validate(args: argparse.Namespace) -> int:
    from .runner import setup

    cfg = grid.load_config(args.config, args.overrides)  # a [sweep] table is left out
    # every check a launch makes: ranks, output paths, data files (loaded and parsed), checkpoint
    setup(cfg, args.ranks if args.ranks is not None else 2, rank=1)
    print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) if args.show else f"{args.config}: ok")
    return 0


def _launch(args: argparse.Namespace) -> int:
    """``byzmpi run -n P``: validate here, then exec the venv's mpiexec on this same command."""
    from .runner import check_world

    if args.group_size is not None:
        problem = group_problem(args.np, args.group_size)
        if problem:
            raise ConfigError("--group-size", problem)
    for one in grid.from_args(args):
        check_world(one.load(), args.np if args.group_size is None else args.group_size)
    cmd = mpiexec_command(args.np, ["-m", "byzmpi", "run", *map(str, args.configs)])
    for o in args.overrides:
        cmd += ["--set", o]
    cmd += grid.forward_arguments(args)
    if args.group_size is not None:
        cmd += ["--group-size", str(args.group_size)]
    for flag in ("json", "keep_going", "skip_finished"):
        if getattr(args, flag):
            cmd.append("--" + flag.replace("_", "-"))
    sys.stdout.flush()
    os.execve(cmd[0], cmd, mpi_env())
    return 0  # pragma: no cover


def _run(args: argparse.Namespace) -> int:
    from .signals import STOP

    STOP.install()  # first: a SIGTERM/SIGUSR1 during start-up must not kill the rank
    if args.resume:
        args.overrides.append("checkpoint.resume=require")
    elif args.fresh:
        args.overrides.append("checkpoint.resume=never")
    if args.np is not None and not under_mpi_launcher():
        return _launch(args)

    from .checkpoint import REQUEUE_EXIT
    from .comm import World
    from .runner.batch import run_batch, share_of

    world = World()
    runs = _grid_runs(args, world)
    group, groups, team = 0, 1, world
    if args.group_size is not None:
        problem = group_problem(world.size, args.group_size)
        if problem:
            if world.is_server:
                print(f"byzmpi: {problem}", file=sys.stderr, flush=True)
            world.exit(2)
        groups = world.size // args.group_size
        group, team = world.rank // args.group_size, world.split_groups(args.group_size)
    label = f"group {group}: " if groups > 1 else ""
    out = run_batch(
        share_of(runs, group, groups),
        team,
        report=lambda summary: _print_summary(summary, as_json=args.json),
        keep_going=groups > 1 or args.keep_going,
        skip_finished=args.skip_finished or groups > 1,
        label=label,
    )
    preempted = world.any(out.preempted)
    failed = world.sum_int(len(out.failed) if team.is_server else 0)
    if preempted:
        if world.is_server:
            print(f"[byzmpi] exiting with status {REQUEUE_EXIT}: requeue the job to resume", flush=True)
        world.exit(REQUEUE_EXIT)
    if failed:
        if world.is_server:
            print(f"[byzmpi] {failed} run(s) failed at setup (see above); the others finished", flush=True)
        world.exit(1)
    world.barrier()
    return 0


def group_problem(world_size: int, group_size: int) -> str | None:
    """Why ``--group-size`` cannot split this world, or None."""
    if group_size < 2:
        return f"--group-size must be >= 2 (a server and a host), got {group_size}"
    if world_size % group_size:
        return f"--group-size {group_size} must divide the number of ranks {world_size}"
    return None


def check_distinct_outputs(runs: list[grid.GridRun]) -> None:
    """Two runs of one job must not write the same trace or checkpoint (they would silently
    overwrite each other): refused before any run starts."""
    seen: dict[str, str] = {}
    for one in runs:
        cfg = one.load()
        for field, path in (("run.trace", cfg.trace_path), ("checkpoint.path", cfg.checkpoint_path)):
            key = f"{field}:{path.resolve()}"
            if key in seen:
                raise ConfigError(
                    field,
                    f"runs {seen[key]!r} and {one.name!r} of this job both write {path}; give them distinct "
                    "run.name values (or {name} in the path)",
                )
            seen[key] = one.name


def _grid_runs(args: argparse.Namespace, world: Any) -> list[grid.GridRun]:
    """The runs of the command line's sweep description; every rank expands it alike, so on an
    error all of them stop and rank 0 prints it."""
    try:
        runs = grid.from_args(args)
        check_distinct_outputs(runs)
        return runs
    except ByzmpiError as exc:
        if world.rank == 0:
            print(exc.line(), file=sys.stderr, flush=True)
        world.exit(exc.exit_code)
        raise  # pragma: no cover - world.exit does not return


def _print_summary(summary: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.__dict__, default=float), flush=True)
        return
    if summary.extra.get("status") != "finished":
        print(
            f"[byzmpi] {summary.extra.get('status')}: {summary.rounds} rounds in {summary.wall_seconds:.2f} s "
            f"-> {summary.trace}",
            flush=True,
        )
        return
    f = summary.final
    t = summary.time_split
    n = max(summary.rounds, 1)
    print(
        f"[byzmpi] done: {summary.rounds} rounds in {summary.wall_seconds:.2f} s -> {summary.trace}\n"
        f"[byzmpi] final loss {f.get('loss', float('nan')):.6g}, accuracy {f.get('accuracy', float('nan')):.4f}, "
        f"gap {f.get('gap', float('nan')):.4g}; rejected {summary.rejected} messages\n"
        f"[byzmpi] per round (ms): setup {1e3 * t['t_setup'] / n:.3f}, compute {1e3 * t['t_compute'] / n:.3f}, "
        f"comm {1e3 * t['t_comm'] / n:.3f}, "
        f"aggregate {1e3 * t['t_aggregate'] / n:.3f}, io {1e3 * t['t_io'] / n:.3f}, eval {1e3 * t['t_eval'] / n:.3f}",
        flush=True,
    )
