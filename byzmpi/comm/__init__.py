"""The communication layer: the only package of byzmpi that imports mpi4py."""

from .world import RoundComm, World

__all__ = ["RoundComm", "World"]
