#!/bin/bash
# The example report committed in analysis/results/quickstart_report/: the quickstart exactly as
# `make demo` runs it (9 ranks, configs/quickstart.toml), then `byzmpi report --out`.
#   analysis/quickstart_report.sh            (from anywhere; uses .venv/bin/byzmpi unless BYZMPI is set)
set -euo pipefail
cd "$(dirname "$0")/.."
BYZMPI=${BYZMPI:-.venv/bin/byzmpi}
timeout 900 "$BYZMPI" run -n 9 configs/quickstart.toml --set run.trace=runs/quickstart.h5 --set run.progress=log
"$BYZMPI" report runs/quickstart.h5 --out analysis/results/quickstart_report
"$BYZMPI" report runs/quickstart.h5 > analysis/results/quickstart_report/summary.txt
