"""Several runs in one job: one after the other on the whole world, or packed — the world split into
groups that each run their share of the runs concurrently (``byzmpi run --group-size Q``).

* Runs are dealt to the groups round-robin in grid order (run j to group j mod G), so which run a
  group takes depends only on the grid and the group count.
* A run whose setup fails (a config, data or checkpoint error, agreed by every rank of its group)
  is reported and skipped: the group goes on with its next run. An exception in the middle of a run
  still ends the whole job (MPI cannot take a rank out of a collective); resubmitting resumes.
* A stop request (SIGTERM/SIGUSR1) checkpoints the run each group is in and ends the job with the
  requeue status; the requeued job resumes each unfinished run from its checkpoint and skips the
  runs whose trace says they finished (same config, all rounds done).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ByzmpiError
from ..schema import Config
from .loop import run_rounds
from .server import RunSummary
from .setup import setup


class RunSpec(Protocol):
    """One run of a batch (a grid entry): its name and how to load its config."""

    name: str

    def load(self) -> Config: ...


@dataclass
class BatchOutcome:
    """What this rank's group did: runs finished, skipped as already finished, failed at setup,
    and whether it stopped on a stop request."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    preempted: bool = False


def finished_before(cfg: Config) -> bool:
    """The run's trace exists and says this very config finished all its rounds."""
    from ..trace import open_trace

    path = cfg.trace_path
    if not path.is_file():
        return False
    try:
        with open_trace(path) as f:
            attrs = f.attrs
            return bool(
                attrs.get("status") == "finished"
                and attrs.get("config_fingerprint") == cfg.fingerprint()
                and int(attrs.get("rounds_done", -1)) == cfg.run.rounds
            )
    except Exception:  # an unreadable trace is not a finished run
        return False


def share_of(runs: Sequence[RunSpec], group: int, groups: int) -> list[RunSpec]:
    """The runs group ``group`` of ``groups`` takes: every ``groups``-th one, from its index."""
    return [r for j, r in enumerate(runs) if j % groups == group]


def run_batch(
    runs: Sequence[RunSpec],
    world: Any,
    *,
    report: Callable[[RunSummary], None],
    keep_going: bool,
    skip_finished: bool,
    label: str = "",
) -> BatchOutcome:
    """Run ``runs`` one after the other on ``world`` (a group's world when packed). ``keep_going``:
    a run that fails at setup is reported and skipped (else the job ends with its status);
    ``skip_finished``: runs whose trace says they finished are not run again."""
    out = BatchOutcome()
    for k, one in enumerate(runs, 1):
        error: ByzmpiError | None = None
        prepared = None
        skip = False
        try:
            cfg = one.load()
            skip = skip_finished and finished_before(cfg)
            if not skip:
                prepared = setup(cfg, world.size, world.rank)
        except ByzmpiError as exc:
            error = exc
        # every rank of the group takes part, so an error seen by only some ranks stops all of them
        failing = world.lowest_failing_rank(error is not None)
        if failing >= 0:
            if world.rank == failing and error is not None:
                print(f"{error.line()}{f' [{label}run {one.name}]' if keep_going else ''}", file=sys.stderr, flush=True)
            if not keep_going:
                world.exit(error.exit_code if error is not None else 2)
            out.failed.append(one.name)
            continue
        if world.any(skip):
            if world.is_server:
                print(f"[byzmpi] {label}{one.name}: finished before, skipped", flush=True)
            out.skipped.append(one.name)
            continue
        if world.is_server and len(runs) > 1:
            index = getattr(one, "index", None)
            where = f" (grid index {index})" if index is not None else ""
            print(f"[byzmpi] {label}run {k} of {len(runs)}{where}: {one.name}", flush=True)
        assert prepared is not None
        status, summary = run_rounds(prepared, world)
        if summary is not None:
            report(summary)
        if status == "preempted":
            out.preempted = True
            break
        out.finished.append(one.name)
    return out
