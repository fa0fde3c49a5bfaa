"""Progress on rank 0: a tqdm bar on a terminal, periodic log lines in a batch job."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(
        self, total: int, *, mode: str = "auto", every: float = 10.0, name: str = "run", start: int = 0
    ) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode, self.every, self.name, self.total = mode, every, name, total
        self.start_round, self.t0 = start, time.monotonic()
        self._last = self.t0
        self.status = ""
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, desc=name, unit="round", dynamic_ncols=True, file=sys.stderr)

    def update(self, done: int, status: str | None = None) -> None:
        """``done`` rounds are complete; ``status`` (e.g. latest loss) is shown with the next line."""
        if status is not None:
            self.status = status
        if self._bar is not None:
            self._bar.n = done
            if status is not None:
                self._bar.set_postfix_str(status, refresh=False)
            self._bar.refresh() if done == self.total else self._bar.update(0)
            return
        now = time.monotonic()
        if self.mode == "log" and (now - self._last >= self.every or done == self.total):
            self._last = now
            rate = (done - self.start_round) / max(now - self.t0, 1e-9)
            print(
                f"[byzmpi] {self.name}: round {done}/{self.total} ({100.0 * done / self.total:.0f}%) "
                f"{rate:.1f} rounds/s {self.status}",
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
