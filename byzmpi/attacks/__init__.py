"""Byzantine behaviours, each a pure function of what the attacker knows."""

from . import (  # noqa: F401  (register)
    alie as _alie,
    alie_search as _alie_search,
    constant as _constant,
    foe as _foe,
    gaussian as _gaussian,
    ipm as _ipm,
    label_flip as _label_flip,
    mimic as _mimic,
    none as _none,
    shift_back as _shift_back,
    sign_flip as _sign_flip,
)
from .alie import alie, alie_z, coordinate_std
from .alie_search import alie_search
from .constant import constant_payload
from .foe import foe
from .gaussian import gaussian
from .ipm import ipm
from .label_flip import label_flip
from .mimic import mimic, mimic_target
from .registry import ATTACKS, Attack, AttackContext, CoalitionStats, LocalContext, register_attack
from .scale_search import deviation, scale_grid, search_scale
from .shift_back import shift_back, shift_back_vector, strict_majority
from .sign_flip import sign_flip

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackContext",
    "CoalitionStats",
    "LocalContext",
    "register_attack",
    "alie",
    "alie_search",
    "alie_z",
    "constant_payload",
    "coordinate_std",
    "deviation",
    "foe",
    "gaussian",
    "ipm",
    "label_flip",
    "mimic",
    "mimic_target",
    "scale_grid",
    "search_scale",
    "shift_back",
    "shift_back_vector",
    "sign_flip",
    "strict_majority",
]
