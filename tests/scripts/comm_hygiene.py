"""100,000 sampled rounds through byzmpi.comm: Create_group over the members, Bcast, Gatherv, Free.

Run as ``mpiexec -n 4 python -m mpi4py tests/scripts/comm_hygiene.py ROUNDS``; every round checks
the broadcast and the gathered rows, and the server prints ``OK <rounds>`` at the end. Uses no
torch, so it measures the communication layer alone.
"""

import sys

import numpy as np

from byzmpi.comm import World
from byzmpi.layout import Layout
from byzmpi.plan import sample_clients

rounds = int(sys.argv[1])
world = World()
n_clients = 2 * (world.size - 1)  # two clients per host
layout = Layout(n_clients, world.size)
down = np.zeros(4, dtype=np.float32)
width = 3
mine = layout.clients_of(world.rank)
send = np.zeros((max(len(mine), 1), width), dtype=np.float32)
recv = np.zeros((n_clients, width), dtype=np.float32)
for k in range(rounds):
    sampled = sample_clients(7, k, n_clients, size=3)
    members = layout.members(sampled)
    with world.round_comm(members, k) as rc:
        if rc is None:
            continue
        if world.is_server:
            down[:] = k
        rc.bcast(down)
        assert down[0] == np.float32(k), (world.rank, k, down)
        here = sampled[layout.host[sampled] == world.rank]
        for j, c in enumerate(here):
            send[j] = (k % 1000, c, world.rank)
        out = recv[: sampled.size] if world.is_server else None
        rc.gather_rows(send[: here.size], out, layout.rows_per_member(sampled))
        if world.is_server:
            assert np.array_equal(out[:, 1], sampled.astype(np.float32)), (k, out, sampled)
            assert np.all(out[:, 0] == k % 1000)
            assert np.array_equal(out[:, 2], layout.host[sampled].astype(np.float32))
world.barrier()
if world.is_server:
    print(f"OK {rounds}", flush=True)
