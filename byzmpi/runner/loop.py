"""The rounds of one run on one rank: the role's round, the all-rank stop check every
``run.sync_every`` rounds, periodic and final checkpoints."""

from __future__ import annotations

import time
from typing import Any

from ..schema import Config
from ..signals import STOP
from .host import Host
from .server import RunSummary, Server
from .setup import Setup


def inject_failure(cfg: Config, rank: int, k: int) -> None:
    """Fault injection for tests: ``debug.fail_rank`` raises at the start of ``debug.fail_round``."""
    if cfg.debug.fail_rank == rank and cfg.debug.fail_round == k:
        raise RuntimeError(f"injected failure on rank {rank} at round {k} at {time.time():.3f} (debug.fail_rank)")


def run_rounds(s: Setup, world: Any) -> tuple[str, RunSummary | None]:
    """Run the rounds of a prepared setup on this rank.

    Returns the status (``finished`` or ``preempted``: a SIGTERM/SIGUSR1 arrived, every rank
    stopped at the same round boundary after a checkpoint) and, on the server, the summary.
    """
    cfg = s.cfg
    role: Server | Host = Server(s, world) if world.is_server else Host(s, world)
    rounds, every, sync = cfg.run.rounds, cfg.checkpoint.every, cfg.run.sync_every
    keep_checkpoint = every > 0 or s.resume is not None
    status, done = "failed", s.start_round
    stop = STOP.install()
    role.start()
    try:
        for k in range(s.start_round, rounds):
            inject_failure(cfg, world.rank, k)
            role.round(k)
            done = k + 1
            requested = world.any(stop.requested is not None) if done % sync == 0 or done == rounds else False
            if requested or (every and done % every == 0 and done < rounds):
                role.checkpoint(done, complete=False)
                keep_checkpoint = True
            if requested:
                status = "preempted"
                if world.is_server:
                    print(
                        f"[byzmpi] {cfg.run.name}: stop requested, checkpoint at round {done} written to "
                        f"{cfg.checkpoint_path}",
                        flush=True,
                    )
                break
        else:
            if keep_checkpoint:
                role.checkpoint(done, complete=True)
            status = "finished"
    finally:
        summary = role.finish(status, done)
    return status, summary
