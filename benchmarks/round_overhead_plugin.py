"""Benchmark-only plugin for ``benchmarks/round_overhead.py``: the method ``bench_echo``.

Loaded through a config's ``run.plugins = ["/path/to/round_overhead_plugin.py"]`` (which also
exercises byzmpi's plugin mechanism). The method ignores the task: the server broadcasts a
buffer of ``dim`` floats, every sampled client sends the downlink back unchanged as its message,
and the server aggregates the messages (the configured rule, e.g. mean) into the buffer. So one
round moves exactly the bytes of a bare ``Bcast`` + ``Gather`` of ``dim`` floats, and everything
else in the round is byzmpi's own work (plan, validation, aggregation, trace).

When ``BYZMPI_BENCH_STAMPS`` is set, the server records ``time.perf_counter()`` at each downlink
(the start of its round) and writes them as JSON ``{dim: [t0, t1, ...]}`` to that path at exit,
so the benchmark can measure the full round-to-round period (including anything the runner does
between rounds that the trace's ``t_round`` does not cover).
"""

from __future__ import annotations

import atexit
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from byzmpi.methods import MethodSpec, RoundInfo, register_method
from byzmpi.params import Param

NAME = "bench_echo"
_STAMPS: dict[int, list[float]] = {}


@dataclass
class EchoServer:
    x: Tensor  # the task's model (kept at x0: evaluation and final_params need one)
    buf: Tensor  # what is broadcast, (dim,) float32


@dataclass
class EchoClient:
    pass


class Echo:
    name = NAME

    def __init__(self, task, *, dim: int, dtype: torch.dtype = torch.float32) -> None:
        self.task, self.dtype = task, dtype
        self.downlink_len = self.message_len = dim
        self._stamps = _STAMPS.setdefault(dim, [])

    def init_server(self, x0: Tensor) -> EchoServer:
        buf = (torch.arange(self.downlink_len, dtype=torch.float32) % 7) - 3.0
        return EchoServer(x=x0.clone(), buf=buf)

    def init_client(self, client: int) -> EchoClient:
        return EchoClient()

    def model(self, server: EchoServer) -> Tensor:
        return server.x

    def downlink(self, server: EchoServer, plan, out: Tensor) -> None:
        self._stamps.append(time.perf_counter())
        out.copy_(server.buf)

    def client_message(self, state: EchoClient, down: Tensor, plan, client: int, out: Tensor,
                       *, flip: bool = False) -> None:
        out.copy_(down)

    def server_update(self, server: EchoServer, msgs: Tensor, clients: np.ndarray, plan, aggregate) -> RoundInfo:
        agg = aggregate(msgs).value
        server.buf.copy_(agg)
        return RoundInfo(aggregate_norm=float(agg.norm()), update_norm=0.0)


def _write_stamps() -> None:
    path = os.environ.get("BYZMPI_BENCH_STAMPS")
    stamps = {str(d): s for d, s in _STAMPS.items() if s}
    if path and stamps:  # only the server records stamps
        with open(path, "w") as fh:
            json.dump(stamps, fh)


atexit.register(_write_stamps)

register_method(
    MethodSpec(
        name=NAME,
        build=lambda task, *, seed, dtype, dim: Echo(task, dim=dim, dtype=dtype),
        doc="Benchmark only: clients echo the downlink of `dim` floats; the server aggregates the echoes.",
        params={"dim": Param("dim", int, 1000, "floats broadcast and sent back per client", minimum=1)},
    ),
    replace=True,
)
