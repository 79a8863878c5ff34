# Shared helpers of the .ci scripts (sourced). Run from the repository root.
SCALE=${CI_SCALE:-ci}

# run_id CELL: the run id that computes CELL at $SCALE (the workflow's own plan).
run_id() {
  python - "$1" "$SCALE" <<'PY'
import sys

from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config

print(plan(load_config("config.yaml"), sys.argv[2]).cells[sys.argv[1]])
PY
}

# forget_run RUN_ID: remove a run's directory (data, job record, checkpoints) and its aggregated tables,
# so that the next `snakemake` computes it from scratch.
forget_run() {
  rm -rf "results/$SCALE/runs/$1" "results/$SCALE/tables/runs/$1".*
}

# wait_for_checkpoint RUN_ID PID [TIMEOUT_S]: wait until the run has written a checkpoint while PID
# (the snakemake driving it) is still alive. Fails when PID exits first or after TIMEOUT_S.
wait_for_checkpoint() {
  local dir="results/$SCALE/runs/$1/checkpoints" deadline=$((SECONDS + ${3:-600}))
  while ((SECONDS < deadline)); do
    if compgen -G "$dir/*" >/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "FAIL: snakemake ($2) exited before $1 wrote a checkpoint" >&2; return 1; }
    sleep 0.5
  done
  echo "FAIL: no checkpoint of $1 after ${3:-600} s" >&2
  return 1
}

# json_field FILE KEY
json_field() { python -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
