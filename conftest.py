"""Test environment: the venv's MPI first on PATH and the MPI environment defaults of byzmpi's
launch helper (byzmpi/launch.py) for every test and every job a test starts."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from byzmpi.launch import mpi_env  # noqa: E402

_bin = str(Path(sys.executable).parent)
os.environ.update(mpi_env())
os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")
os.environ["PYTHONPATH"] = str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
