"""Whether the MPI library accepts device (CUDA) buffers: the library's own query, asked through
the library this process loaded.

mpi4py 4.1 has no call for it, so we look ``MPIX_Query_cuda_support`` up (ctypes) in the libmpi
mapped into this process (Open MPI and MPICH both export it; 1 = the library can move CUDA memory,
0 = it cannot). The pip wheels of Open MPI and MPICH are built without CUDA and answer 0; a
site's CUDA-aware build answers 1. A library without the symbol answers "unknown" (None).
"""

from __future__ import annotations

import ctypes
import os

from mpi4py import MPI  # noqa: F401  (the library must be loaded before we look into it)


def loaded_mpi_libraries() -> list[str]:
    """Paths of the libmpi shared objects mapped into this process."""
    found: list[str] = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.split()[-1] if line.strip() else ""
                if "libmpi" in os.path.basename(path) and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


def cuda_support() -> bool | None:
    """The loaded MPI library's ``MPIX_Query_cuda_support()``: True, False, or None (no such query)."""
    for path in [*loaded_mpi_libraries(), None]:
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            query = lib.MPIX_Query_cuda_support
        except (OSError, AttributeError):
            continue
        query.restype = ctypes.c_int
        return bool(query())
    return None
