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
from .alie import alie, alie_z, coordinate_std, default_z
from .alie_search import alie_harm_search, alie_search
from .constant import constant_payload
from .foe import foe, foe_search
from .gaussian import gaussian
from .ipm import ipm
from .label_flip import label_flip
from .mimic import mimic, mimic_target
from .registry import ATTACKS, Attack, AttackContext, CoalitionStats, LocalContext, register_attack
from .scale_search import (
    ScaleSearch,
    deviation,
    log_scale_grid,
    maximise_harm,
    scale_grid,
    search_grid,
    search_scale,
)
from .shift_back import shift_back, shift_back_vector, strict_majority
from .sign_flip import sign_flip

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackContext",
    "CoalitionStats",
    "LocalContext",
    "register_attack",
    "ScaleSearch",
    "alie",
    "alie_harm_search",
    "alie_search",
    "alie_z",
    "constant_payload",
    "coordinate_std",
    "default_z",
    "deviation",
    "foe",
    "foe_search",
    "gaussian",
    "ipm",
    "label_flip",
    "log_scale_grid",
    "maximise_harm",
    "mimic",
    "mimic_target",
    "scale_grid",
    "search_grid",
    "search_scale",
    "shift_back",
    "shift_back_vector",
    "sign_flip",
    "strict_majority",
]
