"""The catalogue as a whole: names, declared parameters, shapes and dtypes in both models."""

from __future__ import annotations

import pytest
import torch

from byzmpi.attacks import ATTACKS
from byzmpi.params import resolve_params

from .contexts import local, mean_defender, omniscient

EXPECTED = {
    "none",
    "sign_flip",
    "label_flip",
    "alie",
    "alie_search",
    "ipm",
    "foe",
    "gaussian",
    "mimic",
    "shift_back",
    "nan_payload",
    "inf_payload",
    "huge_payload",
    "zero_payload",
}
OMNISCIENT_ONLY = {"alie_search", "foe", "shift_back"}


def test_catalogue_names_and_local_support():
    assert EXPECTED <= set(ATTACKS)
    for name in EXPECTED:
        attack = ATTACKS[name]
        assert attack.doc and attack.name == name
        assert (attack.local is None) == (name in OMNISCIENT_ONLY), name
        for p in attack.params.values():
            assert p.doc, f"{name}.{p.name} has no doc"


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_attack_returns_one_row_per_byzantine_in_the_message_dtype(name, dtype):
    attack = ATTACKS[name]
    params = resolve_params(attack.params, {}, "attack", name)
    gen = torch.Generator().manual_seed(1)
    honest = torch.randn(5, 7, generator=gen, dtype=dtype)
    own = torch.randn(3, 7, generator=gen, dtype=dtype)
    x0 = torch.zeros(7, dtype=dtype)
    ctx = omniscient(honest, own, m=8, defender=mean_defender(honest), model=x0 + 1.0, x0=x0, lr=0.1)
    out = attack.build(ctx, **params)
    assert out.shape == own.shape and out.dtype == dtype and out.device == own.device
    if attack.local is not None:
        on_host = attack.local(local(own[:2], coalition_rows=own, m=8), **params)
        assert on_host.shape == (2, 7)


def test_attacks_do_not_modify_their_inputs():
    gen = torch.Generator().manual_seed(2)
    honest, own = torch.randn(5, 4, generator=gen), torch.randn(2, 4, generator=gen)
    keep_h, keep_o = honest.clone(), own.clone()
    for name in EXPECTED:
        attack = ATTACKS[name]
        params = resolve_params(attack.params, {}, "attack", name)
        attack.build(
            omniscient(honest, own, defender=mean_defender(honest), model=torch.ones(4), x0=torch.zeros(4), lr=0.5),
            **params,
        )
        if attack.local is not None:
            attack.local(local(own), **params)
        assert torch.equal(honest, keep_h) and torch.equal(own, keep_o), name
