"""The small facts a run is assembled from, each computed in exactly one place.

Config validation (:mod:`byzmpi.config`) and the run builder (:func:`byzmpi.runner.setup.setup`)
both call these, so the sampler that validation checks is the sampler the run uses, and the
Byzantine mask, the server dtype and "is the attack simulated" have one definition each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .aggregators import Pipeline
from .attacks import ATTACKS, Attack
from .methods import METHODS
from .plan import Sampler
from .schema import Config


def build_sampler(cfg: Config) -> Sampler:
    """The round sampler: coin probability and first-round rule from the method, sizes from
    ``clients``."""
    p, first_full = METHODS[cfg.method.name].coin(dict(cfg.method.params))
    c = cfg.clients
    return Sampler(
        seed=cfg.run.seed,
        n=c.n,
        per_round=c.per_round,
        full_round=c.full_round,
        p=p,
        byzantine_ids=np.asarray(c.byzantine_ids, dtype=np.int64),
        first_full=first_full,
    )


def build_pipeline(cfg: Config) -> Pipeline:
    """The configured aggregator (pre-aggregators, then the rule)."""
    a = cfg.aggregator
    return Pipeline.build(a.name, dict(a.params), [(p, dict(pp)) for p, pp in a.pre], cfg.run.seed)


def byzantine_mask(cfg: Config) -> np.ndarray:
    """Bool per client id: is it Byzantine."""
    mask = np.zeros(cfg.clients.n, dtype=bool)
    mask[np.asarray(cfg.clients.byzantine_ids, dtype=np.int64)] = True
    return mask


def checked_receive(cfg: Config) -> bool:
    """Whether the server receives messages by the checked path (``run.receive``; ``auto``: when
    Byzantine clients compute their own messages, i.e. the local threat model with an attack)."""
    if cfg.run.receive != "auto":
        return bool(cfg.run.receive == "checked")
    return cfg.attack.threat_model == "local" and cfg.attack.name != "none" and cfg.clients.byzantine > 0


def server_dtype(cfg: Config) -> torch.dtype:
    """dtype of the server's model and aggregation (``run.server_dtype``)."""
    return torch.float64 if cfg.run.server_dtype == "float64" else torch.float32


@dataclass(frozen=True)
class ThreatModel:
    """Who builds the Byzantine messages of a run, and how.

    ``simulated``: the server builds them from the round's honest messages (omniscient model, an
    attack other than ``none``, at least one Byzantine client); ``local``: the Byzantine hosts
    build them; ``flips_labels``: Byzantine clients compute on a label-flipped view of their data;
    ``space``: ``estimator`` (the attack is computed on, and replaces, the vector the rule
    aggregates, then written back as the message that produces it) or ``message`` (on what travels).
    """

    attack: Attack
    params: dict[str, Any]
    model: str
    simulated: bool
    local: bool
    flips_labels: bool
    space: str


def attack_space(cfg: Config) -> str:
    """``attack.space`` resolved: ``auto`` is ``estimator`` for methods whose rule aggregates
    something other than the messages (the variance-reduced methods and RoSDHB's momenta), else
    ``message`` (also in the local threat model, where hosts attack what they send)."""
    has_view = METHODS[cfg.method.name].estimator and cfg.attack.threat_model == "omniscient"
    if cfg.attack.space == "auto":
        return "estimator" if has_view else "message"
    return cfg.attack.space if has_view else "message"  # without a view the two spaces coincide


def threat_model(cfg: Config) -> ThreatModel:
    attack = ATTACKS[cfg.attack.name]
    active = cfg.attack.name != "none" and cfg.clients.byzantine > 0
    model = cfg.attack.threat_model
    return ThreatModel(
        attack=attack,
        params=dict(cfg.attack.params),
        model=model,
        simulated=active and model == "omniscient",
        local=active and model == "local",
        flips_labels=attack.flips_labels and cfg.clients.byzantine > 0,
        space=attack_space(cfg),
    )
