"""What every benchmark JSON records about where and when it ran.

``machine_info(watch=...)``: host, platform, Python / torch / numpy versions, CPU model, memory,
``OMP_NUM_THREADS``, the widest SIMD the CPU offers (``simd``: compiled kernels such as the sorting
networks run about twice as fast relative to memory with AVX-512 as with AVX2, and the shared
machines come with either), the load average at the start, the git commit and whether the folders in
``watch`` had uncommitted changes (a number measured on a dirty tree is not the commit's).
``finish(info)`` adds the load average and time at the end. Benchmarks on the shared 2-core
development machines are only comparable within one run; the load averages say how shared it was.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def machine_info(watch: Sequence[str] = ("byzmpi",)) -> dict[str, Any]:
    import numpy as np
    import torch

    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "load_average_at_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if info["cuda_devices"]:
        info["cuda_device_name"] = torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and "simd" not in info:
                flags = set(line.split(":", 1)[1].split())
                info["simd"] = next((s for s in ("avx512f", "avx2", "avx", "neon", "asimd") if s in flags), "other")
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(mem[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["git_commit"] = _git("rev-parse", "HEAD")
        info["dirty"] = {w: bool(_git("status", "--porcelain", "--", w)) for w in watch}
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def finish(info: dict[str, Any]) -> dict[str, Any]:
    info["load_average_at_end"] = os.getloadavg()
    info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return info
