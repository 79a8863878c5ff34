#!/usr/bin/env bash
# Fault test: a `run` job killed mid-way is resumed from its checkpoint by rerunning the workflow, and
# the final tables equal those of an uninterrupted run.
#
#   .ci/fault_test.sh UNINTERRUPTED_TABLES [CELL]     # CELL default: lstm_gd (discrete, central, stable)
#
# UNINTERRUPTED_TABLES: a copy of results/ci/tables made after an uninterrupted ci-scale run (.ci/run
# makes it). The run of CELL is removed, recomputed by `snakemake --cores 2 --config scale=ci` started in
# its own session, and once it has written its first checkpoint the whole session (snakemake and the run
# process) gets SIGKILL, as on a node crash. Then `snakemake --unlock` and the same command again: the
# run must resume from the checkpoint (job.json `resumed_from`), and its tables, the summary and the
# claims must equal the uninterrupted ones (.ci/compare_tables.py; the engine resumes bitwise on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
REF=${1:?usage: .ci/fault_test.sh UNINTERRUPTED_TABLES [CELL]}
CELL=${2:-lstm_gd}
ID=$(run_id "$CELL")
LOG=${CI_LOGS:-results/ci-logs}/fault_test
mkdir -p "$LOG"
SMK=(snakemake --cores 2 --config "scale=$SCALE" -- all "results/$SCALE/tables/runs/$ID.parquet")

echo "fault test: cell $CELL, run $ID"
forget_run "$ID"
setsid "${SMK[@]}" >"$LOG/1-killed.log" 2>&1 &
pid=$!
trap 'kill -KILL -- "-$pid" 2>/dev/null || true' EXIT # never leave the session behind
wait_for_checkpoint "$ID" "$pid"
kill -KILL -- "-$pid" # the whole session: snakemake and the run process
wait "$pid" 2>/dev/null || true
trap - EXIT
ckpts=$(ls "results/$SCALE/runs/$ID/checkpoints")
echo "killed the run session (pgid $pid) with checkpoint(s): $ckpts"
[ ! -e "results/$SCALE/runs/$ID/job.json" ] || fail "the run finished before the kill: test inconclusive"

snakemake --unlock --config "scale=$SCALE" >"$LOG/2-unlock.log" 2>&1
"${SMK[@]}" >"$LOG/3-resumed.log" 2>&1 || { tail -40 "$LOG/3-resumed.log"; fail "the rerun failed"; }
resumed=$(json_field "results/$SCALE/runs/$ID/job.json" resumed_from)
[ -n "$resumed" ] || fail "the rerun did not resume from a checkpoint (job.json resumed_from is empty)"
echo "rerun resumed from $resumed"
python .ci/compare_tables.py "$REF" "results/$SCALE/tables" "$ID" || fail "tables differ from the uninterrupted run"
echo "fault test passed"
