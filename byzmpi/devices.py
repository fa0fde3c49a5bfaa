"""Which device a rank computes on (``run.device``), and the determinism settings that go with it.

* ``cpu``: every rank on the CPU.
* ``cuda``: each rank takes GPU ``local_rank mod visible_devices``, where the local rank comes from
  the launcher (``SLURM_LOCALID``, Open MPI's ``OMPI_COMM_WORLD_LOCAL_RANK``, MPICH/Hydra's
  ``MPI_LOCALRANKID``, PMI's ``PMI_LOCAL_RANK``, MVAPICH's ``MV2_COMM_WORLD_LOCAL_RANK``); no visible
  GPU is a start-up error naming ``run.device``.
* ``auto``: ``cuda`` when a GPU is visible, else ``cpu``.

Determinism on a GPU (docs/design.md, "Devices"): byzmpi sets torch's deterministic-algorithm
switch and cuBLAS's workspace setting, so a GPU run is reproducible on the same GPU model, driver
and library versions, for the same layout of clients over ranks; bit-identity across rank counts
and with a CPU run is not promised there (reductions may be ordered differently). On the CPU all
results are bit-identical across rank counts and on resume.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from .errors import ConfigError

LOCAL_RANK_VARIABLES = (
    "SLURM_LOCALID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "PMI_LOCAL_RANK",
    "MV2_COMM_WORLD_LOCAL_RANK",
)
DEVICES = ("cpu", "cuda", "auto")


def local_rank(env: Mapping[str, str] | None = None) -> int:
    """This rank's index among the ranks on its node (0 when no launcher says)."""
    env = os.environ if env is None else env
    for key in LOCAL_RANK_VARIABLES:
        value = env.get(key, "")
        if value.strip().isdigit():
            return int(value)
    return 0


def choose_device(
    requested: str, *, env: Mapping[str, str] | None = None, cuda_count: int | None = None
) -> torch.device:
    """The device for ``run.device = requested`` on this rank (``cuda_count``: visible GPUs; by
    default torch's count)."""
    if requested not in DEVICES:
        raise ConfigError("run.device", f"must be one of {', '.join(DEVICES)} (got {requested!r})")
    count = (torch.cuda.device_count() if torch.cuda.is_available() else 0) if cuda_count is None else cuda_count
    if requested == "cpu" or (requested == "auto" and count == 0):
        return torch.device("cpu")
    if count == 0:
        raise ConfigError(
            "run.device",
            "cuda was asked for but this rank sees no CUDA device (CUDA_VISIBLE_DEVICES, the torch build, "
            "the node); use run.device = 'auto' or 'cpu'",
        )
    return torch.device("cuda", local_rank(env) % count)


def make_deterministic(device: torch.device) -> None:
    """On a GPU: deterministic algorithms where torch has them (an error where an operation has
    none, rather than silent nondeterminism) and cuBLAS's fixed workspace."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
