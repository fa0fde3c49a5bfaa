"""``python -m byzmpi``: the CLI. Launch runs as ``mpiexec -n P python -m mpi4py -m byzmpi run CONFIG``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
