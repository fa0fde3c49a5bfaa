"""Training methods: explicit state plus downlink / client message / server update."""

from . import dasha as _dasha, marina as _marina, robust_sgd as _robust_sgd, rosdhb as _rosdhb  # noqa: F401
from .base import METHODS, Method, MethodSpec, RoundInfo, register_method

__all__ = ["METHODS", "Method", "MethodSpec", "RoundInfo", "register_method"]
