"""Byzantine behaviours, each a pure function of what the attacker knows."""

from . import alie as _alie, gaussian as _gaussian, none as _none, sign_flip as _sign_flip  # noqa: F401  (register)
from .alie import alie, alie_z
from .gaussian import gaussian
from .registry import ATTACKS, Attack, AttackContext, CoalitionStats, LocalContext, register_attack
from .sign_flip import sign_flip

__all__ = ["ATTACKS", "Attack", "AttackContext", "CoalitionStats", "LocalContext", "register_attack", "alie", "alie_z", "gaussian", "sign_flip"]
