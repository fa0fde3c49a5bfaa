"""The only module that talks MPI: the world, per-round sampling communicators, buffer collectives.

Everything that crosses ranks is a flat, preallocated, fixed-dtype buffer moved by the uppercase
mpi4py calls (``Bcast``, ``Gatherv``, ``Allreduce``); nothing here pickles. Buffers are numpy arrays
or CPU torch tensors (zero-copy through ``__array__``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
from mpi4py import MPI

#: Create_group tags: round communicators cycle through [0, TAG_CYCLE), coalition communicators
#: through [TAG_CYCLE, 2·TAG_CYCLE) (MPI guarantees tags up to at least 32767)
TAG_CYCLE = 16384
#: point-to-point tag of the checked receive path (inside a round communicator)
TAG_ROWS = 1
#: the largest wrong-length message the checked path drains into memory in one piece
MAX_DRAIN_BYTES = 1 << 30


def _array(buf: Any) -> np.ndarray:
    """A zero-copy numpy view of a numpy array or CPU torch tensor; refuses copies silently made."""
    arr = np.asarray(buf)
    if not arr.flags.c_contiguous:
        raise BufferError("MPI buffers must be C-contiguous")
    return arr


_EMPTY = np.empty(0, dtype=np.float32)
_LAYOUTS: dict[tuple[tuple[int, ...], int], tuple[np.ndarray, np.ndarray]] = {}


def _counts_and_displacements(rows_per_member: list[int], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Gatherv's receive counts and displacements (in floats) for rows of ``width`` floats,
    remembered per (rows per member, width): a run has few distinct round shapes."""
    key = (tuple(rows_per_member), width)
    found = _LAYOUTS.get(key)
    if found is None:
        counts = np.asarray(rows_per_member, dtype=np.int64) * width
        displs = np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.int64)
        if len(_LAYOUTS) >= 4096:
            _LAYOUTS.clear()
        found = _LAYOUTS[key] = (counts, displs)
    return found


class RoundComm:
    """The communicator of one round: rank 0 (the server) plus the hosts of the sampled clients,
    in ascending world rank, so the server is rank 0 here too."""

    def __init__(self, comm: MPI.Intracomm) -> None:
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def bcast(self, buf: Any) -> None:
        """In-place broadcast of ``buf`` from the server to every member."""
        self.comm.Bcast(_array(buf), root=0)

    def gather_rows(self, send: Any | None, recv: Any | None, rows_per_member: list[int]) -> None:
        """Gather fixed-length float32 rows: member r contributes ``rows_per_member[r]`` rows of
        ``send``; the server receives them in member order into ``recv`` (rows × L)."""
        if self.rank == 0:
            out = _array(recv)
            width = out.shape[1] if out.ndim == 2 else 1
            counts, displs = _counts_and_displacements(rows_per_member, width)
            self.comm.Gatherv([_EMPTY, MPI.FLOAT], [out, counts, displs, MPI.FLOAT], root=0)
        else:
            self.comm.Gatherv([_array(send), MPI.FLOAT], None, root=0)

    def gather_float64(self, value: float) -> np.ndarray | None:
        """One float64 per member (e.g. its compute seconds); the server gets them in member order."""
        send = np.array([value], dtype=np.float64)
        recv = np.empty(self.size, dtype=np.float64) if self.rank == 0 else None
        self.comm.Gather(send, recv, root=0)
        return recv

    # -- the checked receive path: the server never trusts a sender's length ----------------------
    def send_checked(self, rows: Any) -> None:
        """Member side of :meth:`gather_checked`: this member's rows as one point-to-point message
        to the server."""
        self.comm.Send([_array(rows), MPI.FLOAT], dest=0, tag=TAG_ROWS)

    def gather_checked(self, recv: Any, rows_per_member: list[int]) -> np.ndarray:
        """Server side: receive every member's rows into ``recv`` (rows × L), checking each
        message's length before it is received (matched probe, ``Get_count``, ``Message.Recv``,
        i.e. MPI_Mrecv): a message of the wrong length is drained into a scratch buffer of its own
        size (never into ``recv``) and its member's rows are reported bad. Returns bad per row."""
        out = _array(recv)
        width = out.shape[1] if out.ndim == 2 else 1
        flat = out.reshape(-1)
        bad = np.zeros(out.shape[0], dtype=bool)
        start = 0
        for member in range(1, self.size):
            expected = rows_per_member[member] * width
            if not self._recv_checked(member, TAG_ROWS, flat[start * width : start * width + expected], MPI.FLOAT):
                bad[start : start + rows_per_member[member]] = True
            start += rows_per_member[member]
        return bad

    def _recv_checked(self, source: int, tag: int, into: np.ndarray, datatype: MPI.Datatype) -> bool:
        status = MPI.Status()
        message = self.comm.Mprobe(source=source, tag=tag, status=status)
        nbytes = status.Get_count(MPI.BYTE)
        if nbytes == into.nbytes:
            message.Recv([into, datatype])
            return True
        # wrong length: receive it whole into a scratch buffer of exactly its size (up to a cap; a
        # longer one is truncated by MPI into the capped buffer, an error this call absorbs)
        scratch = np.empty(min(nbytes, MAX_DRAIN_BYTES), dtype=np.uint8)
        try:
            message.Recv([scratch, MPI.BYTE])
        except MPI.Exception:
            pass
        return False


class World:
    """Rank 0 is the server; ranks 1..P−1 host clients."""

    def __init__(self, comm: MPI.Intracomm | None = None) -> None:
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._group = self.comm.Get_group()

    @property
    def is_server(self) -> bool:
        return self.rank == 0

    def split_groups(self, group_size: int) -> World:
        """The world split into consecutive groups of ``group_size`` ranks (``Comm.Split``, color =
        rank // group_size): each group is a World of its own, with its own server (its rank 0).
        Collective over every rank."""
        if group_size < 2 or self.size % group_size:
            raise ValueError(f"group size {group_size} must be >= 2 and divide the world size {self.size}")
        return World(cast(MPI.Intracomm, self.comm.Split(self.rank // group_size, self.rank)))

    def sum_int(self, value: int) -> int:
        """Collective over all ranks: the sum of every rank's ``value``."""
        out = np.empty(1, dtype=np.int64)
        self.comm.Allreduce(np.array([value], dtype=np.int64), out, op=MPI.SUM)
        return int(out[0])

    @contextmanager
    def round_comm(self, members: list[int], tag: int) -> Iterator[RoundComm | None]:
        """The round's communicator, built with ``Create_group`` over the members only (ranks not
        in ``members`` get None and are never blocked) and freed in a ``finally`` every round."""
        if self.rank not in members:
            yield None
            return
        group = self._group.Incl(members)
        try:
            comm = self.comm.Create_group(group, tag % TAG_CYCLE)
        finally:
            group.Free()
        comm.Set_errhandler(MPI.ERRORS_RETURN)  # an MPI error becomes an exception (then MPI_Abort), never UB
        try:
            yield RoundComm(comm)
        finally:
            comm.Free()

    def coalition_sum(self, members: list[int], buf: Any, tag: int) -> None:
        """In-place ``Allreduce(SUM)`` of ``buf`` over ``members`` only (a communicator of, e.g.,
        the ranks hosting the round's sampled Byzantine clients), created and freed here."""
        group = self._group.Incl(members)
        try:
            comm = self.comm.Create_group(group, TAG_CYCLE + tag % TAG_CYCLE)
        finally:
            group.Free()
        try:
            comm.Allreduce(MPI.IN_PLACE, _array(buf), op=MPI.SUM)
        finally:
            comm.Free()

    def lowest_failing_rank(self, failed: bool) -> int:
        """Collective over all ranks: the lowest rank that reports ``failed``, or −1 if none did.
        Lets every rank take the same exit after a setup error seen by only some of them."""
        mine = np.array([self.rank if failed else self.size], dtype=np.int64)
        out = np.empty(1, dtype=np.int64)
        self.comm.Allreduce(mine, out, op=MPI.MIN)
        return -1 if out[0] == self.size else int(out[0])

    def any(self, flag: bool) -> bool:
        """Collective over all ranks: True if any rank's ``flag`` is set (one tiny Allreduce)."""
        out = np.empty(1, dtype=np.int32)
        self.comm.Allreduce(np.array([int(flag)], dtype=np.int32), out, op=MPI.MAX)
        return bool(out[0])

    def gather_bytes(self, send: np.ndarray, counts: list[int] | None) -> np.ndarray | None:
        """Collective over all ranks: concatenate every rank's uint8 buffer on rank 0, which passes
        the byte count of each rank (known to it in advance, e.g. from state templates)."""
        send = np.ascontiguousarray(send, dtype=np.uint8)
        if self.rank != 0:
            self.comm.Gatherv([send, MPI.BYTE], None, root=0)
            return None
        c = np.asarray(counts, dtype=np.int64)
        if c[0] != send.size:
            raise ValueError("rank 0's count must equal its own buffer size")
        out = np.empty(int(c.sum()), dtype=np.uint8)
        displs = np.concatenate([[0], np.cumsum(c[:-1])])
        self.comm.Gatherv([send, MPI.BYTE], [out, c, displs, MPI.BYTE], root=0)
        return out

    def barrier(self) -> None:
        self.comm.Barrier()

    def versions(self) -> dict[str, str]:
        """The mpi4py version and the first line of the MPI library's version string."""
        import mpi4py

        return {"mpi4py": mpi4py.__version__, "mpi": MPI.Get_library_version().strip("\x00").strip().splitlines()[0]}

    def abort(self, code: int) -> None:
        """End the whole job from one rank (the others may be waiting in a collective): flush, then
        MPI_Abort with ``code``, which the launcher reports as the job's exit status."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def exit(self, code: int) -> None:
        """End this rank after every rank agreed to stop: finalize MPI cleanly (no MPI_Abort
        banner), then leave with ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.Finalize()
        os._exit(code)
