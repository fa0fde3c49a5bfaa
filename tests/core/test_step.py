"""The pure server step, in process (no MPI): one round of each method built by hand and checked
against the paper's update equation, and hostile wires fed to the step.

Every reference below is computed from the definition with the rule's own function on vectors
built here (the clients' messages are computed by calling the method's client step directly),
not through the step's own aggregation path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from byzmpi.aggregators import centered_clipping, coordinate_median, trimmed_mean
from byzmpi.config import parse_config
from byzmpi.plan import RoundPlan
from byzmpi.runner.setup import Run, setup
from byzmpi.runner.step import ServerState, new_server_state, step
from byzmpi.validation import ACCEPTED, BAD_INDEX, BAD_LENGTH, NON_FINITE

N, FEATURES = 5, 6


def make_run(
    method: dict,
    aggregator: dict,
    *,
    compressor: dict | None = None,
    clients: dict | None = None,
    attack: dict | None = None,
) -> Run:
    raw = {
        "run": {"seed": 3, "rounds": 10, "trace": "unused.h5"},
        "clients": {"n": N, "byzantine": 0, **(clients or {})},
        "task": {"name": "synthetic", "features": FEATURES, "samples": 400, "batch_size": 8},
        "method": method,
        "aggregator": aggregator,
        "attack": attack or {"name": "none"},
        "compressor": compressor or {"name": "identity"},
        "checkpoint": {"resume": "never"},
    }
    return setup(parse_config(raw), world_size=3, rank=1)  # rank 1: no optimum solve needed


class Clients:
    """Every client's state, and the round's wire built by calling the method's client step."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.states = {c: run.method.init_client(c) for c in range(run.cfg.clients.n)}

    def wire(self, state: ServerState, plan: RoundPlan) -> torch.Tensor:
        m = self.run.method
        down = torch.zeros(m.downlink_len)
        m.downlink(state.method, plan, down)
        wire = torch.zeros(plan.m, m.codec.wire_len(plan))
        for j, c in enumerate(plan.sampled.tolist()):
            m.codec.encode(m.client_message(self.states[c], down, plan, c), plan, c, wire[j])
        return wire

    def messages(self, state: ServerState, plan: RoundPlan) -> torch.Tensor:
        """The dense vectors the server decodes (the reference's inputs), from a copy of the states."""
        saved = copy.deepcopy(self.states)
        wire = self.wire(state, plan)
        self.states = saved
        return self.run.method.codec.decode(wire, plan.sampled, plan, torch.float32)


def plan_of(run: Run, k: int, *, full: bool | None = None) -> RoundPlan:
    plan = run.sampler.plan(k)
    if full is not None and plan.full != full:
        plan = RoundPlan(plan.round, full, plan.sampled, plan.byzantine)
    return plan


def test_sgd_round_is_x_minus_lr_times_the_rule_of_the_momenta():
    run = make_run({"name": "sgd", "lr": 0.3, "momentum": 0.5}, {"name": "median", "f": 1})
    clients, state = Clients(run), new_server_state(run)
    x0 = state.method.x.clone()
    plan = plan_of(run, 0)
    down = x0.clone()
    momenta = []
    for c in plan.sampled.tolist():  # m_i = β·0 + (1 − β)·g_i at x^0, on the client's round-0 batch
        g = run.task.gradient(down, run.task.batch(c, 0))
        momenta.append(0.5 * g)
    reference = x0 - 0.3 * coordinate_median(torch.stack(momenta))
    step(run, state, plan, clients.wire(state, plan))
    assert torch.allclose(state.method.x, reference, atol=1e-6)


def test_vr_marina_aggregates_g_plus_difference_not_the_differences():
    """Byz-VR-MARINA: g^{k+1} = ARAgg(g^k + Q(Δ_i)); with centered clipping (not translation
    equivariant) this differs from g^k + ARAgg(Q(Δ_i))."""
    run = make_run({"name": "vr_marina", "lr": 0.5, "p": 0.0}, {"name": "centered_clipping", "tau": 0.05, "f": 1})
    clients, state = Clients(run), new_server_state(run)
    plan0 = plan_of(run, 0)
    assert plan0.full  # the first round is a full-gradient round
    step(run, state, plan0, clients.wire(state, plan0))
    g_k = state.method.g.clone()
    x_k = state.method.x.clone()
    plan1 = plan_of(run, 1, full=False)
    deltas = clients.messages(state, plan1)
    centre = copy.deepcopy(state.pipeline.state)
    reference = centered_clipping(g_k + deltas, tau=0.05, iterations=3, state=centre).value
    wrong = g_k + centered_clipping(deltas, tau=0.05, iterations=3, state=copy.deepcopy(state.pipeline.state)).value
    step(run, state, plan1, clients.wire(state, plan1))
    assert torch.allclose(state.method.g, reference, atol=1e-6)
    assert not torch.allclose(reference, wrong, atol=1e-4)  # the test can tell the two updates apart
    assert torch.allclose(state.method.x, x_k - 0.5 * g_k, atol=1e-7)  # x^{k+1} = x^k − γ g^k


def test_vr_marina_pp_clips_differences_and_adds_back_g():
    """Alg. 1 (c_k = 0): g^{k+1} = g^k + ARAgg(clip_λ(Q(Δ_i))), λ = α‖x^{k+1} − x^k‖."""
    run = make_run({"name": "vr_marina_pp", "lr": 0.5, "p": 0.0, "clip_alpha": 0.7}, {"name": "median", "f": 1})
    clients, state = Clients(run), new_server_state(run)
    plan0 = plan_of(run, 0)
    step(run, state, plan0, clients.wire(state, plan0))
    g_k = state.method.g.clone()
    plan1 = plan_of(run, 1, full=False)
    deltas = clients.messages(state, plan1).double()
    radius = 0.7 * float((0.5 * g_k.double()).norm())
    norms = deltas.norm(dim=1, keepdim=True)
    clipped = deltas * torch.clamp(radius / norms, max=1.0)
    reference = g_k.double() + coordinate_median(clipped)
    record = step(run, state, plan1, clients.wire(state, plan1))
    assert record.clip_radius == pytest.approx(radius, rel=1e-6)
    assert torch.allclose(state.method.g.double(), reference, atol=1e-6)


def test_dasha_clip_radius_uses_the_current_step():
    """radius_t = α‖x^{t+1} − x^t‖ with the step the clients just took (not the previous one,
    which is 0 in round 1 and would clip every difference to 0)."""
    run = make_run(
        {"name": "dasha_page", "lr": 0.2, "p": 0.0, "clip": True, "clip_alpha": 2.0},
        {"name": "median", "f": 1},
        compressor={"name": "randk", "k": 3},
    )
    clients, state = Clients(run), new_server_state(run)
    plan0 = plan_of(run, 0)
    step(run, state, plan0, clients.wire(state, plan0))
    g1 = state.method.g.clone()
    plan1 = plan_of(run, 1, full=False)
    record = step(run, state, plan1, clients.wire(state, plan1))
    assert record.clip_radius == pytest.approx(2.0 * 0.2 * float(g1.double().norm()), rel=1e-6)
    assert record.clip_radius > 0 and record.clipped < N


def test_rosdhb_momenta_of_coordinated_masks_then_trimmed_mean():
    """m_i ← β m_i + (1 − β)(d/K) g_i ⊙ 1_M (one mask M for everyone), x ← x − γ TM(m)."""
    run = make_run(
        {"name": "rosdhb", "lr": 0.1, "beta": 0.8},
        {"name": "trimmed_mean", "f": 1},
        compressor={"name": "randk_coordinated", "k": 4},
    )
    clients, state = Clients(run), new_server_state(run)
    x0 = state.method.x.clone()
    plan = plan_of(run, 0)
    d = run.task.dim
    mask = run.method.codec.compressor.mask(0, 0)
    assert mask is not None and torch.equal(mask, run.method.codec.compressor.mask(0, 1))  # coordinated
    recon = []
    for c in plan.sampled.tolist():
        g = run.task.gradient(x0, run.task.batch(c, 0))
        r = torch.zeros(d)
        r[mask] = g[mask] * (d / 4)
        recon.append(0.2 * r)  # β·0 + (1 − β)·g̃_i
    reference = x0 - 0.1 * trimmed_mean(torch.stack(recon), trim=1)
    step(run, state, plan, clients.wire(state, plan))
    assert torch.allclose(state.method.x, reference, atol=1e-6)


# -- hostile wires --------------------------------------------------------------------------------
def test_non_finite_payloads_are_rejected_and_counted_and_the_model_stays_finite():
    run = make_run({"name": "sgd", "lr": 0.1}, {"name": "median", "f": 2})
    clients, state = Clients(run), new_server_state(run)
    plan = plan_of(run, 0)
    wire = clients.wire(state, plan)
    wire[0, 2] = float("nan")
    wire[3, 0] = float("inf")
    record = step(run, state, plan, wire)
    assert record.rejected == 2 and not record.skipped
    assert record.message_rejected.tolist() == [NON_FINITE, ACCEPTED, ACCEPTED, NON_FINITE, ACCEPTED]
    assert bool(torch.isfinite(state.method.x).all())


def test_wrong_width_wire_is_rejected_as_bad_length():
    run = make_run({"name": "sgd", "lr": 0.1}, {"name": "median", "f": 2})
    state = new_server_state(run)
    plan = plan_of(run, 0)
    wire = torch.zeros(plan.m, run.method.codec.wire_len(plan) + 1)
    record = step(run, state, plan, wire)
    assert record.rejected == plan.m and record.skipped
    assert set(record.message_rejected.tolist()) == {BAD_LENGTH}


def test_duplicate_and_out_of_range_topk_indices_are_rejected():
    from byzmpi.compressors import pack_indices

    run = make_run({"name": "sgd", "lr": 0.1}, {"name": "median", "f": 2}, compressor={"name": "topk", "k": 2})
    clients, state = Clients(run), new_server_state(run)
    plan = plan_of(run, 0)
    wire = clients.wire(state, plan)
    k = 2
    pack_indices(torch.tensor([3, 3]), wire[1, k:])  # duplicate index
    pack_indices(torch.tensor([0, run.task.dim + 5]), wire[2, k:])  # out of range
    record = step(run, state, plan, wire)
    assert record.message_rejected[1] == BAD_INDEX and record.message_rejected[2] == BAD_INDEX
    assert record.rejected == 2 and bool(torch.isfinite(state.method.x).all())


def test_a_finite_huge_aggregate_that_would_overflow_the_model_is_refused():
    """x − γg overflows float32 with a finite 1e38 aggregate: the step is refused and counted."""
    run = make_run({"name": "sgd", "lr": 10.0}, {"name": "mean", "f": 0})
    clients, state = Clients(run), new_server_state(run)
    plan = plan_of(run, 0)
    wire = clients.wire(state, plan)
    wire[:, :] = 3e38
    record = step(run, state, plan, wire)
    assert record.skipped and record.model_refused
    assert bool(torch.isfinite(state.method.x).all())


def test_dasha_stored_state_overflow_then_nan_keeps_the_model_finite_and_f():
    """A client that drives its stored g_i to inf (1e38 messages) and then sends NaN: its stored
    state leaves the aggregation (counted), f is lowered only by inputs that left, the model stays
    finite."""
    run = make_run(
        {"name": "dasha_page", "lr": 0.1, "p": 0.0},
        {"name": "trimmed_mean", "f": 1},
        compressor={"name": "randk", "k": 3},
    )
    clients, state = Clients(run), new_server_state(run)
    for k in range(4):
        plan = plan_of(run, k)
        wire = clients.wire(state, plan)
        wire[0, :] = 1e38 if k < 3 else float("nan")
        record = step(run, state, plan, wire)
        assert bool(torch.isfinite(state.method.x).all()), k
    assert record.invalid_states == 1  # client 0's stored g_i is inf
    assert record.rejected == 1 and not record.skipped


def test_monna_refuses_a_round_without_its_trusted_client():
    run = make_run({"name": "sgd", "lr": 0.1}, {"name": "monna", "f": 1, "trusted": 2})
    clients, state = Clients(run), new_server_state(run)
    plan = plan_of(run, 0)
    wire = clients.wire(state, plan)
    row = int(np.flatnonzero(plan.sampled == 2)[0])
    wire[row, 0] = float("nan")  # the trusted client's message is rejected this round
    x0 = state.method.x.clone()
    record = step(run, state, plan, wire)
    assert record.skipped and "trusted client 2" in record.refused
    assert torch.equal(state.method.x, x0)


# -- the attack space -----------------------------------------------------------------------------
def test_sign_flip_in_the_estimator_space_of_vr_marina_negates_g_plus_difference():
    """Estimator space: the Byzantine's vector g^k + Q(Δ_j) is negated, and the message written back
    is the one producing it, −(g^k + Q(Δ_j)) − g^k; in the message space only Q(Δ_j) is negated."""
    from byzmpi.runner.step import receive

    for space in ("estimator", "message"):
        run = make_run(
            {"name": "vr_marina", "lr": 0.5, "p": 0.0},
            {"name": "median", "f": 1},
            clients={"byzantine_ids": [1]},
            attack={"name": "sign_flip", "space": space},
        )
        assert run.threat.space == space
        clients, state = Clients(run), new_server_state(run)
        plan0 = plan_of(run, 0)
        step(run, state, plan0, clients.wire(state, plan0))
        g_k = state.method.g.clone()
        plan1 = plan_of(run, 1, full=False)
        honest = clients.messages(state, plan1)
        row = int(np.flatnonzero(plan1.sampled == 1)[0])
        rows, codes = receive(run, state, plan1, clients.wire(state, plan1))
        expected = -(g_k + honest[row]) - g_k if space == "estimator" else -honest[row]
        assert torch.allclose(rows[row], expected, atol=1e-6), space
        assert torch.equal(rows[row + 1 :], honest[row + 1 :])  # honest rows untouched


def test_sign_flip_in_the_estimator_space_of_rosdhb_negates_the_momentum():
    run = make_run(
        {"name": "rosdhb", "lr": 0.1, "beta": 0.8},
        {"name": "trimmed_mean", "f": 1},
        clients={"byzantine_ids": [2]},
        attack={"name": "sign_flip"},  # auto: the estimator space for RoSDHB
    )
    assert run.threat.space == "estimator"
    clients, state = Clients(run), new_server_state(run)
    for k in range(3):
        plan = plan_of(run, k)
        before = state.method.momenta[2].clone()
        own = clients.messages(state, plan)[int(np.flatnonzero(plan.sampled == 2)[0])]
        step(run, state, plan, clients.wire(state, plan))
        # the momentum the server now holds for the Byzantine is the negation of the honest one
        assert torch.allclose(state.method.momenta[2], -(0.8 * before + 0.2 * own), atol=1e-5), k


def test_local_threat_model_refuses_an_explicit_estimator_space():
    from byzmpi.errors import ConfigError

    with pytest.raises(ConfigError, match="attack.space"):
        make_run(
            {"name": "vr_marina", "lr": 0.5},
            {"name": "median", "f": 1},
            clients={"byzantine_ids": [1]},
            attack={"name": "sign_flip", "threat_model": "local", "space": "estimator"},
        )


def test_monna_needs_a_named_honest_trusted_client():
    from byzmpi.errors import ConfigError

    with pytest.raises(ConfigError, match="aggregator.trusted: monna needs the id"):
        make_run({"name": "sgd", "lr": 0.1}, {"name": "monna", "f": 1})
    with pytest.raises(ConfigError, match="client 1 is Byzantine"):
        make_run({"name": "sgd", "lr": 0.1}, {"name": "monna", "f": 1, "trusted": 1}, clients={"byzantine_ids": [1]})
    with pytest.raises(ConfigError, match="in every round"):
        make_run({"name": "sgd", "lr": 0.1}, {"name": "monna", "f": 1, "trusted": 0}, clients={"per_round": 4})


def test_host_compute_reports_are_validated_like_payloads():
    """A NaN, negative or 1e300 compute time from a host is not a time: ignored and counted, so it
    can never poison t_compute / t_comm in the trace."""
    from byzmpi.runner.server import compute_seconds

    assert compute_seconds(np.array([0.0, 0.01, 0.02]), waited=0.05) == (0.02, 0)
    assert compute_seconds(np.array([0.0, np.nan, 0.02, 1e300, -1.0]), waited=0.05) == (0.02, 3)
    assert compute_seconds(np.array([0.0, np.inf]), waited=0.05) == (0.0, 1)
    assert compute_seconds(None, waited=0.05) == (0.0, 0)
