"""Stop requests: SIGTERM and SIGUSR1 only set a flag.

The round loop reads the flag at round boundaries and all ranks agree on it with one tiny
collective, so a job stops everywhere at the same round, checkpoints, and exits with
:data:`byzmpi.checkpoint.REQUEUE_EXIT`. (Open MPI's ``mpiexec`` forwards SIGUSR1 to every rank;
Slurm sends SIGTERM to every task at a time limit and ``--signal=B:USR1@T`` to the batch script.)
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopFlag:
    """Installs the handlers; ``requested`` names the first signal received (None before).

    ``byzmpi run`` installs one at start-up, before the slow imports, so a signal that arrives
    while a job is still starting is not lost (SIGUSR1's default action would kill the rank).
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signal.Signals(signum).name

    def install(self) -> StopFlag:
        for sig in SIGNALS:
            self._previous.setdefault(sig, signal.signal(sig, self._handle))
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


#: the process-wide flag used by the round loop
STOP = StopFlag()
