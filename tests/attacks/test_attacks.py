"""Every attack on hand-computed small values, in both threat models."""

from __future__ import annotations

import math

import pytest
import torch

from byzmpi.aggregators import coordinate_median
from byzmpi.attacks import (
    ATTACKS,
    alie,
    alie_z,
    constant_payload,
    coordinate_std,
    ipm,
    mimic,
    mimic_target,
    shift_back_vector,
    sign_flip,
    strict_majority,
)
from byzmpi.errors import ConfigError
from byzmpi.params import resolve_params
from byzmpi.validation import ACCEPTED, NON_FINITE, reject_codes

from .contexts import local, mean_defender, omniscient, t

# three honest vectors: μ = [3, 1], σ (ddof = 1) = [3, 0]
HONEST = t([[0.0, 1.0], [3.0, 1.0], [6.0, 1.0]])
# two Byzantines' own honest messages: coalition μ_c = [2, 2], σ_c = [√2, √2]
OWN = t([[1.0, 1.0], [3.0, 3.0]])


def build(name: str, ctx, **params):
    attack = ATTACKS[name]
    return attack.build(ctx, **resolve_params(attack.params, params, "attack", name))


def build_local(name: str, ctx, **params):
    attack = ATTACKS[name]
    return attack.local(ctx, **resolve_params(attack.params, params, "attack", name))


# -- sign flip, label flip, none ------------------------------------------------------------------
def test_sign_flip_negates_own_message_in_both_models():
    assert torch.equal(sign_flip(OWN), -OWN)
    assert torch.equal(build("sign_flip", omniscient(HONEST, OWN)), t([[-1.0, -1.0], [-3.0, -3.0]]))
    assert torch.equal(build_local("sign_flip", local(OWN)), -OWN)


def test_label_flip_passes_the_flipped_label_message_through():
    attack = ATTACKS["label_flip"]
    assert attack.flips_labels and attack.local is not None
    out = build("label_flip", omniscient(HONEST, OWN))
    assert torch.equal(out, OWN) and out.data_ptr() != OWN.data_ptr()  # a copy, not the server's buffer
    assert torch.equal(build_local("label_flip", local(OWN)), OWN)
    # no other attack changes the client's labels
    assert [n for n, a in ATTACKS.items() if a.flips_labels] == ["label_flip"]


def test_none_sends_own():
    assert torch.equal(build("none", omniscient(HONEST, OWN)), OWN)


# -- ALIE -------------------------------------------------------------------------------------------
def test_alie_z_formula_values():
    # z = Φ⁻¹((G − s)/G), G = n − f, s = ⌊n/2 + 1⌋ − f  (docs/algorithms.md §7)
    assert alie_z(20, 5) == pytest.approx(0.2533, abs=5e-5)  # s = 6, Φ⁻¹(9/15)
    assert alie_z(5, 1) == 0.0  # s = 2, Φ⁻¹(2/4) = 0
    assert alie_z(11, 1) == 0.0
    assert alie_z(5, 2) == pytest.approx(0.430727, abs=1e-6)  # G = 3, s = 1, Φ⁻¹(2/3)
    assert alie_z(4, 4) == 0.0  # no honest input: degenerate → 0


def test_alie_given_z_and_default_z():
    assert torch.equal(coordinate_std(HONEST), t([3.0, 0.0]))
    assert torch.allclose(alie(HONEST, z=0.5), t([1.5, 1.0]))
    out = build("alie", omniscient(HONEST, OWN), z=0.5)
    assert torch.allclose(out, t([[1.5, 1.0], [1.5, 1.0]]))
    # default z from the round: m = 5, B = 2 → z(5, 2) = Φ⁻¹(2/3)
    z = alie_z(5, 2)  # the round's (m, b) = (5, 2), asked for explicitly
    assert torch.allclose(build("alie", omniscient(HONEST, OWN), z_from="round"), t([[3.0 - 3.0 * z, 1.0]] * 2))


@pytest.mark.parametrize("m", [1, 2, 3, 5, 17])
def test_coordinate_std_is_the_ddof_1_standard_deviation(m):
    """Against the definition in float64 (numpy's std, ddof = 1), on rows with a large common
    offset, where a one-pass E[x²] − E[x]² formula would lose every digit."""
    import numpy as np

    g = np.random.default_rng(m)
    x = (1e3 + g.standard_normal((m, 1000))).astype(np.float32)
    got = coordinate_std(torch.from_numpy(x)).double().numpy()
    ref = x.astype(np.float64).std(axis=0, ddof=1) if m > 1 else np.zeros(1000)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_alie_local_uses_coalition_statistics():
    # host holds only the first Byzantine; the coalition is both
    out = build_local("alie", local(OWN[:1], coalition_rows=OWN, m=5), z=1.0)
    assert out.shape == (1, 2)
    assert torch.allclose(out, t([[2.0 - math.sqrt(2.0), 2.0 - math.sqrt(2.0)]]))


# -- IPM --------------------------------------------------------------------------------------------
def test_ipm_is_minus_eps_mean():
    assert torch.allclose(ipm(t([3.0, 1.0]), eps=0.1), t([-0.3, -0.1]))
    assert torch.allclose(build("ipm", omniscient(HONEST, OWN)), t([[-0.3, -0.1]] * 2))  # default ε = 0.1
    assert torch.allclose(build("ipm", omniscient(HONEST, OWN), eps=2.0), t([[-6.0, -2.0]] * 2))


def test_ipm_without_honest_messages_uses_own():
    empty = HONEST[:0]
    assert torch.allclose(build("ipm", omniscient(empty, OWN), eps=1.0), t([[-2.0, -2.0]] * 2))


def test_ipm_local_uses_coalition_mean():
    attack = ATTACKS["ipm"]
    assert attack.needs_coalition
    out = build_local("ipm", local(OWN[1:], coalition_rows=OWN), eps=0.5)
    assert torch.allclose(out, t([[-1.0, -1.0]]))


# -- mimic ------------------------------------------------------------------------------------------
SPREAD = t([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [2.0, 1.0]])


def test_mimic_first_copies_lowest_id_honest_message():
    assert mimic_target(SPREAD, rule="first") == 0
    out = build("mimic", omniscient(SPREAD, OWN))  # default rule "first"
    assert torch.equal(out, t([[0.0, 0.0], [0.0, 0.0]]))


def test_mimic_max_variance_copies_extreme_along_top_direction():
    # μ = [3.25, 0.25]; the spread is along the first axis, row 2 (10) is farthest along it
    assert mimic_target(SPREAD, rule="max_variance") == 2
    assert torch.equal(mimic(SPREAD, rule="max_variance"), t([10.0, 0.0]))
    # flipping the sign of the data flips the eigenvector's sign but not the choice
    assert mimic_target(-SPREAD, rule="max_variance") == 2
    # two vectors are symmetric about μ: a tie → the lowest index; identical vectors → index 0
    assert mimic_target(t([[5.0, 1.0], [1.0, 5.0]]), rule="max_variance") == 0
    assert mimic_target(t([[1.0, 1.0]] * 3), rule="max_variance") == 0


def test_mimic_local_sends_coalition_mean_everywhere():
    out = build_local("mimic", local(OWN, coalition_rows=OWN))
    assert torch.allclose(out, t([[2.0, 2.0], [2.0, 2.0]]))


# -- Gaussian and determinism of seeded attacks ------------------------------------------------------
def test_gaussian_is_a_pure_function_of_seed_round_client():
    own = torch.zeros(3, 1000)
    a = build("gaussian", omniscient(HONEST[:0], own, clients=[4, 7, 9], seed=5, round_=3))
    b = build("gaussian", omniscient(HONEST[:0], own, clients=[4, 7, 9], seed=5, round_=3))
    assert torch.equal(a, b)
    assert a.std().item() == pytest.approx(200.0, rel=0.05)
    assert not torch.equal(a[0], a[1])
    # the row of client 7 does not depend on who else is sampled, nor on the threat model
    alone = build("gaussian", omniscient(HONEST[:0], own[:1], clients=[7], seed=5, round_=3))
    assert torch.equal(alone[0], a[1])
    on_host = build_local("gaussian", local(own[:1], clients=[7], seed=5, round_=3))
    assert torch.equal(on_host[0], a[1])
    # another round, another seed → another draw
    assert not torch.equal(build("gaussian", omniscient(HONEST[:0], own, clients=[4, 7, 9], seed=5, round_=4)), a)
    assert not torch.equal(build("gaussian", omniscient(HONEST[:0], own, clients=[4, 7, 9], seed=6, round_=3)), a)


# -- shift-back ---------------------------------------------------------------------------------------
X, X0, LR = t([3.0, 5.0]), t([1.0, 1.0]), 0.5


def test_strict_majority():
    assert strict_majority(3, 4) and strict_majority(2, 3) and strict_majority(1, 1)
    assert not strict_majority(2, 4) and not strict_majority(1, 3) and not strict_majority(0, 0)


def test_shift_back_with_a_strict_majority_sends_back_to_x0():
    honest = t([[7.0, 7.0]])
    ctx = omniscient(honest, OWN, model=X, x0=X0, lr=LR)  # m = 3, B = 2
    out = build("shift_back", ctx)
    assert torch.allclose(out, t([[4.0, 8.0], [4.0, 8.0]]))  # (x − x⁰)/γ
    assert torch.allclose(shift_back_vector(X, X0, LR, mult=2.0), t([8.0, 16.0]))
    assert torch.allclose(build("shift_back", ctx, mult=2.0), t([[8.0, 16.0]] * 2))
    # one SGD step on the Byzantine rows alone lands exactly on x⁰
    assert torch.allclose(X - LR * out.mean(0), X0)


def test_shift_back_without_a_strict_majority_is_honest():
    honest = t([[7.0, 7.0], [8.0, 8.0]])
    # m = 4, B = 2: a tie; [C-PP] (default): the mean of the honest messages
    out = build("shift_back", omniscient(honest, OWN, model=X, x0=X0, lr=LR))
    assert torch.equal(out, t([[7.5, 7.5]] * 2))
    assert torch.equal(build("shift_back", omniscient(honest, OWN, model=X, x0=X0, lr=LR), honest="own"), OWN)
    # rejected honest rows do not count: the majority is over the m sampled
    out = build("shift_back", omniscient(honest[:1], OWN, m=4, model=X, x0=X0, lr=LR), honest="own")
    assert torch.equal(out, OWN)
    out = build("shift_back", omniscient(honest[:1], OWN, m=4, model=X, x0=X0, lr=LR))
    assert torch.equal(out, t([[7.0, 7.0]] * 2))


def test_shift_back_needs_the_trajectory():
    with pytest.raises(ConfigError, match="trajectory"):
        build("shift_back", omniscient(HONEST[:1], OWN))
    # no majority: honest (mean of the honest messages), the trajectory is not needed
    assert torch.equal(build("shift_back", omniscient(HONEST, OWN)), t([[3.0, 1.0]] * 2))
    with pytest.raises(ConfigError, match="length"):
        build("shift_back", omniscient(HONEST[:1], OWN, model=t([1.0, 2.0, 3.0]), x0=t([0.0, 0.0, 0.0]), lr=1.0))
    assert ATTACKS["shift_back"].needs_trajectory and ATTACKS["shift_back"].local is None


def test_shift_back_keeps_the_message_dtype():
    own = OWN.float()
    out = build("shift_back", omniscient(HONEST[:1].float(), own, model=X, x0=X0, lr=LR))
    assert out.dtype == torch.float32


# -- hostile payloads and the server's validation ------------------------------------------------------
@pytest.mark.parametrize(
    "name, code",
    [("nan_payload", NON_FINITE), ("inf_payload", NON_FINITE), ("huge_payload", ACCEPTED), ("zero_payload", ACCEPTED)],
)
def test_constant_payloads_and_what_validation_does_with_them(name, code):
    own = OWN.float()  # the wire dtype
    for out in (build(name, omniscient(HONEST.float(), own)), build_local(name, local(own))):
        assert out.shape == own.shape and out.dtype == torch.float32
        msgs = torch.cat([HONEST.float(), out])
        assert reject_codes(msgs).tolist() == [ACCEPTED] * 3 + [code] * 2


def test_constant_payload_values():
    own = OWN.float()
    assert torch.isnan(build("nan_payload", omniscient(HONEST, own))).all()
    assert torch.equal(build("inf_payload", omniscient(HONEST, own)), torch.full((2, 2), math.inf))
    assert torch.equal(build("huge_payload", omniscient(HONEST, own)), torch.full((2, 2), 1e38))
    assert torch.equal(build("huge_payload", omniscient(HONEST, own), value=-5.0), torch.full((2, 2), -5.0))
    assert torch.equal(build("zero_payload", omniscient(HONEST, own)), torch.zeros(2, 2))
    assert torch.equal(constant_payload(own, 2.5), torch.full((2, 2), 2.5))


def test_huge_value_must_stay_finite_in_float32():
    with pytest.raises(ConfigError, match="attack.value"):
        resolve_params(ATTACKS["huge_payload"].params, {"value": 1e39}, "attack", "huge_payload")


def test_huge_payload_drags_the_mean_but_not_the_median():
    honest = HONEST.float()
    byz = build("huge_payload", omniscient(honest, torch.zeros(1, 2)))
    agg = mean_defender(honest)(byz)
    assert torch.isfinite(agg).all() and (agg > 2e37).all()  # accepted, and the mean follows it
    assert torch.equal(coordinate_median(torch.cat([honest, byz])), torch.tensor([4.5, 1.0]))
