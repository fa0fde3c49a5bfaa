"""Compressors: a dense x ∈ R^d ↔ a fixed-length float32 wire payload.

Interface (:class:`Compressor`, built by ``COMPRESSORS[name].build(d, seed, **params)`` or
:func:`build_compressor`):

==========================================  =====================================================
``d``, ``k``, ``wire_len``, ``wire_bytes``   dimension, coordinates carried, float32 slots / bytes
``unbiased``, ``omega``, ``delta``           E Q(x) = x; E‖Q(x)−x‖² ≤ ω‖x‖²; ‖Q(x)−x‖² ≤ (1−δ)‖x‖²
``shared_mask``                              every client of a round writes the same coordinates
``encode(x, *, round, client, out)``         client: fill float32 ``out`` (length wire_len)
``decode(wire, *, round, client, dtype)``    server: one payload → (d,) tensor
``decode_rows(rows, clients, round, dtype)`` server: (m, wire_len) → (m, d), row i from clients[i];
                                             ``out=`` reuses an (m, d) buffer
``reject_codes(rows)``                       server: uint8 per row, codes of :mod:`byzmpi.validation`
``roundtrip(x, *, round, client)``           client: decode(encode(x)) in x's dtype/device
``mask(round, client)``                      the sorted int64 coordinates the client may write, or
                                             None (any coordinate)
==========================================  =====================================================

Wire formats (all float32; every byte of ``wire_len`` crosses MPI, nothing else does):

=====================  =========  ==============================================================
name                   wire_len   payload
=====================  =========  ==============================================================
``identity``           d          x
``randk``              K          x_S, S = uniform K-subset from (seed, round, "mask", client),
                                  increasing; the server re-derives S and scales by d/K
``randk_coordinated``  K          the same with S from (seed, round, "mask"): one S per round
``topk``               2K         K values, then K increasing int32 indices viewed as float32
=====================  =========  ==============================================================

Cost at d = 10⁶, K = 10⁵, one CPU thread (``python -m tests.compressors.bench_compressors``,
best run on a shared 2-core box; under load every figure grew up to 3×, the order never changed):
one rand-k mask 4 ms (numpy ``Generator.choice`` + sort 7 ms, ``torch.randperm(d)[:K]`` + sort
13 ms); encode with its mask cached 0.1 ms; decode_rows of m = 10 rows into a reused ``out``
7–12 ms (a fresh (m, d) result adds its page faults, ~20 ms at m = 10). Independent masks cost the
server m derivations per round (m × 4 ms); the coordinated mask one. Top-k: encode 12 ms
(``torch.topk``), reject_codes of 10 rows 6 ms (honest rows are increasing: no sort).

Rules for the code that moves payloads: never compute on or convert a wire row before decode
(top-k index slots are mostly denormal float patterns); validate with the compressor's own
:meth:`~Compressor.reject_codes` (top-k adds BAD_INDEX) and decode only accepted rows; a server
that does its math in float64 decodes with ``dtype=torch.float64`` and then matches a client's
float64 ``roundtrip`` bit for bit.
"""

from . import identity as _identity, randk as _randk, topk as _topk  # noqa: F401  (register)
from .identity import Identity
from .masks import random_subset
from .packing import bad_index_rows, pack_indices, unpack_indices
from .randk import RandK
from .registry import COMPRESSORS, WIRE_DTYPE, Compressor, CompressorSpec, build_compressor, register_compressor
from .sparsity import keep_count, sparsity_problem
from .topk import TopK

__all__ = [
    "COMPRESSORS",
    "WIRE_DTYPE",
    "Compressor",
    "CompressorSpec",
    "build_compressor",
    "register_compressor",
    "Identity",
    "RandK",
    "TopK",
    "random_subset",
    "keep_count",
    "sparsity_problem",
    "pack_indices",
    "unpack_indices",
    "bad_index_rows",
]
