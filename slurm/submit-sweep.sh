#!/bin/bash
# Submit a sweep grid as a job array of the right size.
#   bash slurm/submit-sweep.sh GRID [sbatch options...] [-- extra `byzmpi run` arguments for every task]
# e.g. bash slurm/submit-sweep.sh slurm/examples/quickstart-grid.txt --ntasks=9 --array-limit=4
#      bash slurm/submit-sweep.sh configs/quickstart.toml --ntasks=9 -- --grid aggregator.name=krum,median --seeds 1..5
# GRID: a grid file, a folder of configs or a config (see sweep.sbatch); the array size is
# `byzmpi grid GRID [grid args] --count`, with the Python of $BYZMPI_PYTHON, else $BYZMPI_VENV or
# ./.venv, else python on PATH, after checking every run's config (`--check`; BYZMPI_SWEEP_CHECK=0 skips it).
# (--array-limit=K becomes --array=0-(N-1)%K: at most K tasks at once.)
# Prints sbatch's output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
grid=${1:?usage: submit-sweep.sh GRID [sbatch options...] [-- byzmpi run args...]}; shift
opts=(); limit=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in --array-limit=*) limit="%${1#*=}" ;; *) opts+=("$1") ;; esac
  shift
done
[ "${1:-}" = "--" ] && shift
[ -e "$grid" ] || { echo "submit-sweep.sh: no grid file, folder or config $grid" >&2; exit 2; }
# the arguments that describe the grid, as sweep.sbatch picks them
desc=("$grid")
[ -n "${BYZMPI_SWEEP_NAME:-}" ] && desc+=(--set "run.name=$BYZMPI_SWEEP_NAME")
rest=("$@")
for ((k = 0; k < ${#rest[@]}; k++)); do
  case "${rest[k]}" in
    --set|--grid|--seeds) desc+=("${rest[k]}" "${rest[k + 1]:-}"); k=$((k + 1)) ;;
    --set=*|--grid=*|--seeds=*) desc+=("${rest[k]}") ;;
  esac
done
if [ -n "${BYZMPI_PYTHON:-}" ]; then py=$BYZMPI_PYTHON
elif [ -n "${BYZMPI_VENV:-}" ]; then py=$BYZMPI_VENV/bin/python
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
else py=python; fi
# --check: every run's config is valid here, before N tasks fail on the cluster (BYZMPI_SWEEP_CHECK=0: skip)
check=(--check); [ "${BYZMPI_SWEEP_CHECK:-1}" = 0 ] && check=()
n=$("$py" -m byzmpi grid "${desc[@]}" --count "${check[@]}")
[ "$n" -gt 0 ] || { echo "submit-sweep.sh: $grid holds no runs" >&2; exit 2; }
exec sbatch --array="0-$((n - 1))$limit" "${opts[@]}" "$here/sweep.sbatch" "$grid" "$@"
