"""Device choice (run.device) and CUDA-awareness (run.cuda_aware), without a GPU: the local-rank
rule, the errors, what is recorded. The CUDA paths themselves are tested where a GPU is lent
(tests marked cuda skip here)."""

from __future__ import annotations

import pytest
import torch

from byzmpi.config import parse_config
from byzmpi.devices import choose_device, local_rank
from byzmpi.errors import ConfigError
from byzmpi.runner.setup import setup


def test_local_rank_from_each_launcher_variable():
    assert local_rank({}) == 0
    assert local_rank({"SLURM_LOCALID": "3"}) == 3
    assert local_rank({"OMPI_COMM_WORLD_LOCAL_RANK": "5"}) == 5
    assert local_rank({"MPI_LOCALRANKID": "2"}) == 2
    assert local_rank({"SLURM_LOCALID": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "7"}) == 1  # Slurm first
    assert local_rank({"SLURM_LOCALID": "x"}) == 0


def test_gpu_is_local_rank_modulo_visible_devices():
    assert choose_device("cuda", env={"SLURM_LOCALID": "5"}, cuda_count=4) == torch.device("cuda", 1)
    assert choose_device("auto", env={"OMPI_COMM_WORLD_LOCAL_RANK": "2"}, cuda_count=2) == torch.device("cuda", 0)
    assert choose_device("auto", env={}, cuda_count=0) == torch.device("cpu")
    assert choose_device("cpu", env={}, cuda_count=8) == torch.device("cpu")
    with pytest.raises(ConfigError, match="run.device: cuda was asked for but this rank sees no CUDA device"):
        choose_device("cuda", env={}, cuda_count=0)


def _run(**run):
    raw = {"run": {"trace": "unused.h5", **run}, "clients": {"n": 3}, "checkpoint": {"resume": "never"}}
    return setup(parse_config(raw), world_size=2, rank=1)


def test_the_run_records_device_and_mpi_cuda_support():
    r = _run()
    assert r.device == torch.device("cpu") and not r.device_buffers
    assert r.mpi_cuda in (True, False, None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA-aware MPI")
def test_cuda_aware_yes_on_a_library_without_cuda_is_a_start_up_error():
    from byzmpi.comm.cuda import cuda_support

    if cuda_support() is True:
        pytest.skip("this MPI library is CUDA-aware")
    with pytest.raises(ConfigError, match="run.cuda_aware: yes, but this MPI library"):
        _run(cuda_aware="yes")
