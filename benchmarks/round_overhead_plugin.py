"""Benchmark-only plugin for ``benchmarks/round_overhead.py``: the method ``bench_echo``.

Loaded through a config's ``run.plugins = ["/path/to/round_overhead_plugin.py"]`` (which also
exercises byzmpi's plugin mechanism). The method does no learning: the server broadcasts a
buffer of d floats, every sampled client sends the downlink back unchanged as its message, and
the server aggregates the messages (the configured rule, e.g. mean) into the buffer, which is
also "the model". So one round moves exactly the bytes of a bare ``Bcast`` + ``Gather`` of d
floats, and everything else in the round is byzmpi's own work (plan, validation, aggregation,
statistics, trace).

d is the task's dimension (the benchmark builds a synthetic task with d − 1 features and one
sample per client): the runner decodes messages into rows of the task's dimension, so a method's
messages cannot have another length. The task is never used for gradients.

The method's wire is an uncompressed float32 payload (an identity ``WireCodec``), and ``build``
ignores the extra context the runner passes (compressor, client count, ...).

When ``BYZMPI_BENCH_STAMPS`` is set, the server records ``time.perf_counter()`` at each downlink
(the start of its round) and writes them as JSON ``{key: [t0, t1, ...]}`` to that path at exit, so
the benchmark can measure the full round-to-round period (including anything the runner does
between rounds that the trace's ``t_round`` does not cover). The key is the method parameter
``stamps_key``, default d (two runs of one job with the same d need distinct keys).
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

from byzmpi.compressors import Identity
from byzmpi.compressors.codec import WireCodec
from byzmpi.methods import MethodSpec, RoundInfo, register_method
from byzmpi.params import Param

NAME = "bench_echo"
_STAMPS: dict[str, list[float]] = {}


@dataclass
class EchoServer:
    buf: Tensor  # what is broadcast and what the clients echo, (d,) float32; also "the model"


@dataclass
class EchoClient:
    pass


class Echo:
    name = NAME

    def __init__(self, task, stamps_key: str = "") -> None:
        d = task.dim
        self.downlink_len = d
        self.codec = WireCodec(Identity(d))  # the wire: an uncompressed float32 payload of d values
        self._stamps = _STAMPS.setdefault(stamps_key or str(d), [])

    def init_server(self, x0: Tensor) -> EchoServer:
        return EchoServer(buf=(torch.arange(self.downlink_len, dtype=torch.float32) % 7) - 3.0)

    def init_client(self, client: int) -> EchoClient:
        return EchoClient()

    def model(self, server: EchoServer) -> Tensor:
        return server.buf

    def downlink(self, server: EchoServer, plan, out: Tensor) -> None:
        self._stamps.append(time.perf_counter())
        out.copy_(server.buf)

    def client_message(self, state: EchoClient, down: Tensor, plan, client: int) -> Tensor:
        return down

    def server_update(self, server: EchoServer, msgs: Tensor, clients: np.ndarray, plan, aggregate) -> RoundInfo:
        agg = aggregate(msgs, clients).value
        server.buf.copy_(agg)
        return RoundInfo(aggregate_norm=float(agg.norm()), update_norm=0.0)


def _write_stamps() -> None:
    path = os.environ.get("BYZMPI_BENCH_STAMPS")
    stamps = {key: s for key, s in _STAMPS.items() if s}
    if path and stamps:  # only the server records stamps
        with open(path, "w") as fh:
            json.dump(stamps, fh)


atexit.register(_write_stamps)

register_method(
    MethodSpec(
        name=NAME,
        build=lambda task, stamps_key="", **context: Echo(task, stamps_key),
        doc="Benchmark only: clients echo the downlink (the task's d floats); the server aggregates the echoes.",
        params={"stamps_key": Param("stamps_key", str, "", "key of this run's downlink timestamps (default: d)")},
    ),
    replace=True,
)
