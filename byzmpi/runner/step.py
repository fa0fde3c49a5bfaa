"""The server's round as a pure step: ``step(run, state, plan, wire) -> RoundRecord``.

No MPI and no I/O: given the round's received wire rows, the step

1. validates every payload (compressor-aware reject codes) and decodes the accepted ones;
2. in the omniscient threat model, replaces the Byzantine rows by the attack built from the
   honest rows (restricted to what each Byzantine's payload can carry), and re-validates;
3. runs the method's server update, whose ``aggregate(x, clients)`` calls the configured
   pipeline with the client id of each row, lowering f only by inputs that really left the
   aggregation;
4. computes the round's statistics for the trace (oracle ones flagged in docs/trace.md) into a
   :class:`RoundRecord`, whose field names are the trace's column names.

The server (:mod:`.server`) does the exchange before the step and writes the record after it;
tests call the step directly with hand-made or hostile wires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..aggregators import Aggregate, Pipeline, RuleRefused
from ..attacks import AttackContext
from ..compressors import Identity
from ..methods import RoundInfo
from ..plan import RoundPlan
from ..roundstats import StatsWorkspace
from ..trace import NOT_APPLICABLE
from ..validation import ACCEPTED, BAD_LENGTH, effective_f, finite_codes
from .setup import Run

NAN = float("nan")
BYTES_PER_FLOAT = 4


@dataclass
class ServerState:
    """The server's state across rounds: the method's state and the aggregator pipeline (with the
    rule's state; both checkpointed), a reused decode buffer and the statistics' reused buffers
    (not checkpointed)."""

    method: Any
    pipeline: Pipeline
    rows: Tensor  # (max m, d) workspace in the server dtype
    stats: StatsWorkspace = field(default_factory=StatsWorkspace)


@dataclass
class RoundRecord:
    """What one round did. Scalar fields are named as the trace's ``rounds`` columns; the
    ``message_*`` arrays are the round's rows of the ``messages`` table (empty when the run does
    not trace messages)."""

    round: int
    full: bool
    sampled: int
    byzantine: int
    rejected: int
    skipped: bool
    aggregate_norm: float
    honest_mean_norm: float
    dist_honest_mean: float
    update_norm: float
    clip_radius: float
    clipped: int
    bytes_up: int
    refused: str = ""  # why the rule declined the round ("" when it did not)
    model_refused: bool = False  # the step would have made the model non-finite: not taken
    invalid_states: int = 0  # stored client states left out of the aggregation as non-finite
    message_client: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    message_byzantine: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    message_rejected: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))
    message_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    message_dist_honest_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    message_weight: np.ndarray = field(default_factory=lambda: np.empty(0))
    message_clipped: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    message_bytes: int = 0


def new_server_state(run: Run) -> ServerState:
    """The server's state on the run's device (the model, method state and decode buffer live there)."""
    c = run.cfg.clients
    return ServerState(
        method=run.method.init_server(run.x0.to(run.device)),
        pipeline=run.pipeline,
        rows=torch.empty(max(c.per_round, c.full_round), run.task.dim, dtype=run.dtype, device=run.device),
    )


# -- 1-2: validation, decoding, the omniscient attack ---------------------------------------------
def receive(
    run: Run, state: ServerState, plan: RoundPlan, wire: Tensor, bad_length: np.ndarray | None = None
) -> tuple[Tensor, Tensor]:
    """Validate the payloads, decode the accepted ones (rejected rows stay NaN), run the omniscient
    attack, and validate the decoded rows: (dense rows (m, d), reject code per row). ``bad_length``:
    rows whose message had the wrong length on the wire (the checked receive path)."""
    method = run.method
    if wire.device != run.device:  # host-staged wire: one (non-blocking from pinned memory) copy to the device
        wire = wire.to(run.device, non_blocking=True)
    codes = method.codec.reject_codes(wire, plan)
    if bad_length is not None and bad_length.any():
        codes = codes.clone()
        codes[torch.from_numpy(bad_length).to(codes.device)] = BAD_LENGTH
    rows = state.rows[: plan.m]
    ok = codes.cpu().numpy() == ACCEPTED
    if ok.all():
        method.codec.decode(wire, plan.sampled, plan, run.dtype, out=rows)
    else:
        rows.fill_(NAN)
        if ok.any():
            keep = torch.from_numpy(ok).to(wire.device)
            rows[keep] = method.codec.decode(wire[keep], plan.sampled[ok], plan, run.dtype)
    if run.threat.simulated and plan.n_byzantine:
        codes = codes.clone()  # the attack marks its rows accepted
        simulate_attack(run, state, plan, rows, codes)
    elif type(method.codec.for_round(plan)) is Identity:
        # the accepted rows are the accepted payloads, copied (or widened to float64): every value
        # passed the finiteness check of reject_codes, so finite_codes would return codes unchanged
        return rows, codes
    return rows, finite_codes(rows, codes)


def simulate_attack(run: Run, state: ServerState, plan: RoundPlan, rows: Tensor, codes: Tensor) -> None:
    """Omniscient model: replace the Byzantine rows (decoded, dense) by the attack built from the
    honest rows, restricted to what each Byzantine's payload can carry this round.

    In the ``estimator`` space (docs/design.md, "Threat models") the attack is computed on the
    vectors the rule aggregates (the method's ``estimator_view``: g^k + Q(Δ_i), g_i, momenta), and
    each attack vector is written back as the message that produces it (``message_for``), then
    restricted to the payload; the searches score the aggregate of those vectors. In the
    ``message`` space it acts on the decoded messages themselves."""
    byz = torch.from_numpy(plan.byzantine)
    honest_ok = ~byz & (codes == ACCEPTED)
    method, byz_clients = run.method, plan.sampled[plan.byzantine]
    estimator = run.threat.space == "estimator"
    honest_clients = plan.sampled[honest_ok.numpy()]

    def to_space(block: Tensor, clients: np.ndarray) -> Tensor:
        return method.estimator_view(state.method, block, clients, plan) if estimator else block  # type: ignore[attr-defined]

    def to_messages(block: Tensor) -> Tensor:
        msgs = method.message_for(state.method, block, byz_clients, plan) if estimator else block  # type: ignore[attr-defined]
        return torch.stack([method.codec.writable(v, plan, int(c)) for v, c in zip(msgs.to(rows.dtype), byz_clients)])

    trial, trial_codes = rows.clone(), codes.clone()  # reused by every call of a search
    trial_codes[byz] = ACCEPTED

    def defender(byz_vectors: Tensor) -> Tensor:
        trial[byz] = to_messages(byz_vectors)
        ok = finite_codes(trial, trial_codes) == ACCEPTED
        f_eff = effective_f(run.f, int((~ok).sum()))
        ids = plan.sampled[ok.numpy()]
        return state.pipeline.peek(to_space(trial[ok], ids), f=f_eff, round_=plan.round, clients=ids).value

    view = getattr(method, "trajectory", None)
    model, x0, lr = view(state.method, plan, run.threat.space) if view is not None else (None, None, None)
    ctx = AttackContext(
        honest=to_space(rows[honest_ok], honest_clients),
        own=to_space(rows[byz], byz_clients),
        clients=byz_clients,
        m=plan.m,
        seed=run.cfg.run.seed,
        round=plan.round,
        defender=defender,
        model=model,
        x0=x0,
        lr=lr,
        n_clients=run.cfg.clients.n,
        f_global=run.cfg.clients.byzantine,
    )
    rows[byz] = to_messages(run.threat.attack.build(ctx, **run.threat.params))
    codes[byz] = ACCEPTED


# -- 3: the method's update with the robust aggregate ---------------------------------------------
@dataclass
class _Aggregation:
    """The first aggregate of a round (what the trace's aggregate statistics describe)."""

    value: Tensor | None = None
    weights: Tensor | None = None
    inputs: Tensor | None = None
    clients: np.ndarray | None = None
    centre: Tensor | None = None
    #: the inputs' norms and distances to the centre, computed with the centre when the inputs are
    #: the round's messages, and the inputs' version counter then (valid while it is unchanged)
    early: tuple[np.ndarray, np.ndarray, int] | None = None


def step(
    run: Run,
    state: ServerState,
    plan: RoundPlan,
    wire: Tensor,
    *,
    messages: bool = True,
    bad_length: np.ndarray | None = None,
) -> RoundRecord:
    """One server round after the exchange: validation, decoding, the omniscient attack, the
    method's update with the robust aggregate, and the round's statistics (per-message ones only
    when ``messages``). ``bad_length``: rows the checked receive path found of the wrong length."""
    msgs, codes = receive(run, state, plan, wire, bad_length)
    codes_np = codes.cpu().numpy()
    acc = codes_np == ACCEPTED
    n_rejected = plan.m - int(np.count_nonzero(acc))
    rows = msgs if n_rejected == 0 else msgs[torch.from_numpy(acc).to(msgs.device)]
    accepted_clients = plan.sampled if n_rejected == 0 else plan.sampled[acc]
    rejected_clients = plan.sampled[~acc] if n_rejected else None
    stats = state.stats
    first = _Aggregation()

    def aggregate(x: Tensor, clients: np.ndarray, dropped: int = 0) -> Aggregate:
        """The pipeline on rows ``x`` sent by (or standing for) ``clients``; ``dropped``: inputs the
        method itself excluded as invalid. f is lowered only by inputs that left the aggregation:
        this round's rejected clients absent from ``clients``, plus ``dropped``."""
        left = (
            dropped
            if rejected_clients is None
            else int(np.count_nonzero(~np.isin(rejected_clients, clients))) + dropped
        )
        out = state.pipeline(x, f=effective_f(run.f, left), round_=plan.round, clients=clients)
        if first.value is None:
            ids = np.asarray(clients)
            honest = ~run.byzantine[ids.astype(np.int64, copy=False)]
            first.value, first.weights, first.inputs, first.clients = out.value, out.weights, x, ids
            if messages and x is msgs:  # the messages themselves: their norms and distances in the same pass
                first.centre, norms, dists = stats.centre_norms_distances(x, honest)
                first.early = (norms, dists, x._version)
            else:
                first.centre = stats.honest_mean(x, honest)
        return out

    refused = ""
    if rows.shape[0] == 0:
        info = RoundInfo(skipped=True)
    else:
        try:
            info = run.method.server_update(state.method, rows, accepted_clients, plan, aggregate)
        except RuleRefused as exc:
            info, refused = RoundInfo(skipped=True), str(exc)
    centre = first.centre
    record = RoundRecord(
        round=plan.round,
        full=bool(plan.full),
        sampled=plan.m,
        byzantine=plan.n_byzantine,
        rejected=n_rejected,
        skipped=info.skipped,
        aggregate_norm=info.aggregate_norm,
        honest_mean_norm=NAN if centre is None else float(centre.norm()),
        dist_honest_mean=stats.distance(first.value, centre) if first.value is not None else NAN,
        update_norm=info.update_norm,
        clip_radius=info.clip_radius,
        clipped=0 if info.clipped is None else int(info.clipped.sum()),
        bytes_up=plan.m * wire.shape[1] * BYTES_PER_FLOAT,
        refused=refused,
        model_refused=info.model_refused,
        invalid_states=info.invalid_states,
    )
    if messages:
        _message_statistics(record, plan, msgs, codes_np, acc, accepted_clients, first, info, wire.shape[1], stats)
    return record


def _message_statistics(
    record: RoundRecord,
    plan: RoundPlan,
    msgs: Tensor,
    codes: np.ndarray,
    acc: np.ndarray,
    clients: np.ndarray,
    first: _Aggregation,
    info: RoundInfo,
    width: int,
    stats: StatsWorkspace,
) -> None:
    """Per-message rows: distances and weights where the first aggregate's rows are this round's
    accepted messages (same clients, same order), clipping where the method clipped per message.
    The norms of the messages and their distances to the honest mean come from one pass over the
    rows when the first aggregate's rows are the messages themselves (nothing rejected), else
    from one pass each."""
    m = plan.m
    n_acc = int(np.count_nonzero(acc))
    record.message_client = plan.sampled
    record.message_byzantine = plan.byzantine
    record.message_rejected = codes
    record.message_bytes = width * BYTES_PER_FLOAT
    dist = np.full(m, np.nan)
    weight = np.full(m, np.nan)
    clipped = np.full(m, NOT_APPLICABLE, dtype=np.float32)
    per_message = first.clients is not None and first.inputs is not None and np.array_equal(first.clients, clients)
    norms: np.ndarray | None
    dist_acc: np.ndarray | None
    if per_message and first.inputs is msgs and first.early is not None and first.early[2] == msgs._version:
        norms, dist_acc = first.early[0], first.early[1]  # the messages are unchanged since the aggregate
    elif per_message and first.inputs is msgs:  # n_acc == m: the same rows, one pass
        norms, dist_acc = stats.norms_and_distances(msgs, first.centre)
    else:
        norms, _ = stats.norms_and_distances(msgs, None, distances=False)
        dist_acc = None
        if per_message:
            assert first.inputs is not None
            _, dist_acc = stats.norms_and_distances(first.inputs, first.centre, norms=False)
    assert norms is not None
    record.message_norm = norms
    if dist_acc is not None:
        dist[acc] = dist_acc
        if first.weights is not None and len(first.weights) == n_acc:
            weight[acc] = first.weights.cpu().numpy()
    weight[~acc] = 0.0
    if info.clipped is not None and len(info.clipped) == n_acc:  # per message (not per client)
        clipped[acc] = np.asarray(info.clipped, dtype=np.float32)
    record.message_dist_honest_mean = dist
    record.message_weight = weight
    record.message_clipped = clipped
