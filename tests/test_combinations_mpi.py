"""Every method with every compressor it accepts, and every rule, pre-aggregator and attack at
least once, in one batched mpiexec job: the integration of the catalogue through the round loop.

Each config runs a few rounds; the test checks that every run finished with a finite model and a
consistent trace (bytes counted from the wire width, Byzantine rows rejected exactly when the
attack sends non-finite payloads).
"""

from __future__ import annotations

import itertools
import textwrap

import h5py
import numpy as np
import pytest

from byzmpi.aggregators import PRE_AGGREGATORS, RULES
from byzmpi.attacks import ATTACKS
from byzmpi.compressors import COMPRESSORS
from byzmpi.config import parse_config
from byzmpi.errors import ConfigError
from byzmpi.methods import METHODS
from byzmpi.plan import choose_byzantine
from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi

N, B, ROUNDS = 12, 2, 6


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _sections(d: dict) -> str:
    out = []
    for section, values in d.items():
        out.append(f"[{section}]")
        subtables = {}
        for key, value in values.items():
            if isinstance(value, dict):
                subtables[key] = value
            elif isinstance(value, list):
                out.append(f"{key} = [{', '.join(_toml(v) for v in value)}]")
            else:
                out.append(f"{key} = {_toml(value)}")
        for name, sub in subtables.items():
            out.append(f"[{section}.{name}]")
            out += [f"{k} = {_toml(v)}" for k, v in sub.items()]
    return "\n".join(out) + "\n"


def _plans(tmp) -> list[tuple[str, dict]]:
    """(name, config dict) for method × compressor, cycling rules, pre-aggregators and attacks."""
    rules = itertools.cycle(sorted(RULES))
    pres = itertools.cycle([[]] + [[p] for p in sorted(PRE_AGGREGATORS)])
    attacks = itertools.cycle(sorted(ATTACKS))
    plans, seen = [], {"rule": set(), "attack": set(), "pre": set()}
    combos = [(m, c) for m in sorted(METHODS) for c in sorted(COMPRESSORS)]
    i = 0
    while combos or seen["rule"] != set(RULES) or seen["attack"] != set(ATTACKS) or seen["pre"] != set(PRE_AGGREGATORS):
        method, compressor = combos.pop(0) if combos else (sorted(METHODS)[i % len(METHODS)], "identity")
        for _ in range(3 * len(RULES) * len(ATTACKS)):  # find a valid (rule, pre, attack) for this pair
            rule, pre, attack = next(rules), next(pres), next(attacks)
            name = f"c{i:02d}_{method}_{compressor}_{rule}_{'-'.join(pre) or 'plain'}_{attack}"
            raw = {
                "run": {
                    "name": name,
                    "seed": i,
                    "rounds": ROUNDS,
                    "eval_every": ROUNDS,
                    "progress": "none",
                    "trace": str(tmp / f"{name}.h5"),
                },
                "clients": {"n": N, "byzantine": B},
                "task": {"name": "synthetic", "features": 8, "samples": 600, "batch_size": 8},
                "method": {"name": method, "lr": 0.05},
                "aggregator": {"name": rule, "pre": pre, **({"mda": {}} if False else {})},
                "attack": {"name": attack},
                "compressor": {"name": compressor, **({} if compressor == "identity" else {"ratio": 0.5})},
            }
            if rule in ("bulyan",):
                raw["aggregator"]["f"] = 1
            if rule == "monna":  # MoNNA's pivot: an honest client the user trusts
                raw["aggregator"]["trusted"] = min(set(range(N)) - set(choose_byzantine(i, N, B).tolist()))
            try:
                parse_config(raw)
            except ConfigError:
                continue
            plans.append((name, raw))
            seen["rule"].add(rule)
            seen["attack"].add(attack)
            seen["pre"].update(pre)
            break
        i += 1
        if i > 400:
            break
    return plans


def test_every_method_compressor_rule_and_attack_runs(tmp_path):
    plans = _plans(tmp_path)
    used = {(raw["method"]["name"], raw["compressor"]["name"]) for _, raw in plans}
    for method in METHODS:  # every method ran, with a compressed wire where it accepts one
        assert any(m == method for m, _ in used), method
    assert {raw["aggregator"]["name"] for _, raw in plans} == set(RULES)
    assert {raw["attack"]["name"] for _, raw in plans} == set(ATTACKS)
    assert set().union(*(raw["aggregator"]["pre"] for _, raw in plans)) == set(PRE_AGGREGATORS)
    paths = []
    for name, raw in plans:
        path = tmp_path / f"{name}.toml"
        path.write_text(textwrap.dedent(_sections(raw)))
        paths.append(str(path))
    res = byzmpi(4, "run", *paths, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    for name, raw in plans:
        with h5py.File(tmp_path / f"{name}.h5", "r") as f:
            assert f.attrs["status"] == "finished", name
            assert np.isfinite(f["final_params"][...]).all(), name
            rounds, msgs = f["rounds"][...], f["messages"][...]
            assert len(rounds) == ROUNDS
            assert np.array_equal(np.bincount(msgs["round"], minlength=ROUNDS), rounds["sampled"])
            per_round_bytes = np.array([msgs["bytes"][msgs["round"] == k].sum() for k in range(ROUNDS)])
            assert np.array_equal(per_round_bytes, rounds["bytes_up"]), name
            byz = msgs["byzantine"] == 1
            if raw["attack"]["name"] in ("nan_payload", "inf_payload") and raw["attack"].get("threat_model") != "local":
                assert np.all(msgs["rejected"][byz] == 1) and np.all(msgs["rejected"][~byz] == 0), name
