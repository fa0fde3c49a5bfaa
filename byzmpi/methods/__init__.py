"""Training methods: explicit state plus downlink / client message / server update."""

from . import robust_sgd as _robust_sgd  # noqa: F401  (register)
from .base import METHODS, Method, MethodSpec, RoundInfo, register_method

__all__ = ["METHODS", "Method", "MethodSpec", "RoundInfo", "register_method"]
