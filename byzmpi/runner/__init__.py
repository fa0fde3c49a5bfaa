"""The SPMD round loop: the server role on rank 0, the host role on every other rank.

One round k (docs/design.md):
1. every rank computes the same ``RoundPlan(k)`` (no communication);
2. the members (rank 0 + hosts of sampled clients) build the round communicator;
3. the server broadcasts the method's downlink buffer;
4. each host fills one fixed-length float32 payload per sampled client (its attack in the local
   threat model);
5. ``Gatherv`` brings the payloads to the server in sampled-id order;
6. server: validation of the payloads (compressor-aware) → decoding of the accepted ones → the
   omniscient attack fills the Byzantine rows → validation of the decoded rows → method update with
   the robust aggregate → trace rows.

The loop knows nothing of any particular method, rule or attack.

Modules: :mod:`.setup` (what every rank builds before round 0, resume included),
:mod:`.server` (rank 0), :mod:`.host` (ranks 1..P−1), :mod:`.loop` (rounds, stop requests,
checkpoints).
"""

from .loop import run_rounds
from .server import RunSummary
from .setup import Setup, check_world, setup

__all__ = ["RunSummary", "Setup", "check_world", "run_rounds", "setup"]
