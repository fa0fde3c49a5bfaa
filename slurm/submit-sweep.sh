#!/bin/bash
# Submit a sweep grid as a job array of the right size.
#   bash slurm/submit-sweep.sh GRID [sbatch options...] [-- extra `byzmpi run` arguments for every task]
# e.g. bash slurm/submit-sweep.sh slurm/examples/quickstart-grid.txt --ntasks=9 --array-limit=4
# (--array-limit=K becomes --array=0-(N-1)%K: at most K tasks at once). Prints sbatch's output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
grid=${1:?usage: submit-sweep.sh GRID [sbatch options...] [-- byzmpi run args...]}; shift
if [ -d "$grid" ]; then
  n=$(find "$grid" -maxdepth 1 -name '*.toml' | wc -l)
else
  n=$(grep -c -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$grid" || true)
fi
[ "$n" -gt 0 ] || { echo "submit-sweep.sh: $grid holds no runs" >&2; exit 2; }
opts=(); limit=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in --array-limit=*) limit="%${1#*=}" ;; *) opts+=("$1") ;; esac
  shift
done
[ "${1:-}" = "--" ] && shift
exec sbatch --array="0-$((n - 1))$limit" "${opts[@]}" "$here/sweep.sbatch" "$grid" "$@"
