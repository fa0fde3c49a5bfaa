"""Red-team cases, in process, through the pure server step: a Byzantine client's hostile payloads
against every method and every rule (several rounds each, so stored state and momenta are hit too).
Invariants: no exception, the model stays finite, honest messages are never rejected, and every
non-finite payload is rejected and counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from byzmpi.aggregators import RULES
from byzmpi.methods import METHODS
from tests.core.test_step import Clients, make_run, new_server_state, plan_of, step

HOSTILE = {
    "nan": lambda k, w: w.fill_(float("nan")),
    "inf_one": lambda k, w: w.__setitem__(0, float("inf")),
    "huge": lambda k, w: w.fill_(1e38),  # finite on the wire, overflows once scaled or summed
    "huge_then_nan": lambda k, w: w.fill_(1e38 if k < 2 else float("nan")),
    "alternating": lambda k, w: w.copy_(torch.where(torch.arange(w.numel()) % 2 == 0, 3e38, -3e38)),
}
BYZ = 1  # the hostile client
RULE_PARAMS = {"monna": {"trusted": 0}, "bulyan": {}, "mda": {}}


def _method(name: str) -> dict:
    base = {"name": name, "lr": 0.5}
    if name in ("vr_marina", "vr_marina_pp", "dasha_page"):
        base["p"] = 0.3
    return base


@pytest.mark.parametrize("method", sorted(METHODS))
def test_hostile_payloads_against_every_rule(method):
    crashes, ran = [], []
    for rule in sorted(RULES):
        f = 1
        compressor = {"name": "randk", "ratio": 0.5} if method in ("dasha_page", "vr_marina_pp") else None
        if method == "rosdhb":
            compressor = {"name": "randk_coordinated", "ratio": 0.5}
        try:
            run = make_run(
                _method(method),
                {"name": rule, "f": f, **RULE_PARAMS.get(rule, {})},
                compressor=compressor,
                clients={"n": 8, "byzantine_ids": [BYZ]} if rule in ("bulyan",) else {"byzantine_ids": [BYZ]},
            )
        except Exception as exc:  # a combination the config refuses (validity) is not a red-team case
            if type(exc).__name__ == "ConfigError":
                continue
            raise
        ran.append(rule)
        for kind, corrupt in HOSTILE.items():
            clients, state = Clients(run), new_server_state(run)
            for k in range(4):
                plan = plan_of(run, k)
                wire = clients.wire(state, plan)
                rows = np.flatnonzero(plan.sampled == BYZ)
                for r in rows:
                    corrupt(k, wire[r])
                try:
                    record = step(run, state, plan, wire)
                except Exception as exc:  # noqa: BLE001 - every crash is collected and reported
                    crashes.append(f"{method}/{rule}/{kind}/round {k}: {type(exc).__name__}: {exc}")
                    break
                model = run.method.model(state.method)
                assert bool(torch.isfinite(model).all()), f"{method}/{rule}/{kind}: non-finite model at round {k}"
                honest = plan.sampled != BYZ
                assert (record.message_rejected[honest] == 0).all(), f"{method}/{rule}/{kind}: honest rejected"
                nonfinite = ~torch.isfinite(wire[torch.from_numpy(rows)]).all(dim=1).numpy() if rows.size else []
                for r, bad in zip(rows, nonfinite):
                    if bad:
                        assert record.message_rejected[r] != 0, f"{method}/{rule}/{kind}: non-finite accepted"
                assert record.rejected == int((record.message_rejected != 0).sum())
    assert not crashes, "\n".join(crashes)
    assert len(ran) == len(RULES), f"rules refused by the config for {method}: {sorted(set(RULES) - set(ran))}"
