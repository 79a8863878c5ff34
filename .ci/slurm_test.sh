#!/usr/bin/env bash
# A subset of the ci scale through the unmodified SLURM profile (`snakemake --profile slurm`), on the
# single-node cluster of .ci/slurm/start.sh (must be running), with GPU-shaped jobs: the `run` rule asks
# for gpu=1, which the plugin submits as `sbatch --gpus=1` against the node's 2 fake GPUs.
#
#   .ci/slurm_test.sh UNINTERRUPTED_TABLES
#
# CI_SLURM_CELLS (default "mlp_gd mlp_gd_central"): their runs are removed and recomputed under SLURM.
# CI_SCANCEL_CELL (default mlp_gd_central, empty = none): its first SLURM job is cancelled with
# `scancel` after its first checkpoint; Snakemake's retry (rule `run`, retries: 2) submits a new job
# that resumes from the checkpoint.
# Asserted: every recomputed run's job.json has a non-empty slurm_job_id that slurmctld knows as
# COMPLETED with TresPerJob=gres:gpu:1 (scontrol, and the slurmctld log), the cancelled job is a
# different id that slurmctld logged as cancelled, the resumed run's job.json names its checkpoint,
# runs outside the subset were not touched, and all tables equal the uninterrupted local run's.
# The plugin's account guessing prints "No SLURM account given, trying to guess" and proceeds without
# one (2.8.0 ignores slurm-no-account); that warning is expected here.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
REF=${1:?usage: .ci/slurm_test.sh UNINTERRUPTED_TABLES}
CELLS=${CI_SLURM_CELLS:-mlp_gd mlp_gd_central}
SCANCEL_CELL=${CI_SCANCEL_CELL-mlp_gd_central}
export SLURM_PARTITION=${SLURM_PARTITION:-gpu} # the profile's documented partition variable
CTLD_LOG=/var/log/slurm/slurmctld.log
LOG=${CI_LOGS:-results/ci-logs}/slurm_test
mkdir -p "$LOG"
[ "$(sinfo -h -o %t | head -1)" = idle ] || fail "no idle SLURM node: start one with .ci/slurm/start.sh"

ids=() targets=()
for cell in $CELLS; do
  id=$(run_id "$cell")
  ids+=("$id")
  targets+=("results/$SCALE/tables/runs/$id.parquet")
  forget_run "$id"
done
echo "SLURM subset: $CELLS -> ${ids[*]}"

# The profile, literally; the CI only shortens the first status check (the profile waits 20 s). The
# jobs compute on the CPU on purpose: the fake GPUs are allocated (SLURM_JOB_GPUS) but not real, and a
# job given a GPU with the default resources.device gpu would stop, as it should, for want of CUDA JAX.
snakemake --profile slurm --config "scale=$SCALE" "resources={device: cpu}" \
  --slurm-init-seconds-before-status-checks 1 \
  -- all "${targets[@]}" >"$LOG/snakemake.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT # do not leave snakemake behind when an assertion fails
cancelled=""
if [ -n "$SCANCEL_CELL" ]; then
  cid=$(run_id "$SCANCEL_CELL")
  wait_for_checkpoint "$cid" "$pid"
  cancelled=$(squeue -h -o '%i %k' | awk -v c="rule_run_wildcards_$cid" '$2 == c {print $1}')
  [ -n "$cancelled" ] || fail "no SLURM job of $cid in squeue"
  scancel "$cancelled"
  echo "scancel $cancelled ($SCANCEL_CELL) after checkpoint(s): $(ls "results/$SCALE/runs/$cid/checkpoints")"
fi
wait "$pid" || { tail -60 "$LOG/snakemake.log"; fail "snakemake --profile slurm failed"; }
grep -E "submitted with SLURM jobid" "$LOG/snakemake.log" | sed 's/^/  /'

for id in "${ids[@]}"; do
  job=$(json_field "results/$SCALE/runs/$id/job.json" slurm_job_id)
  [ -n "$job" ] || fail "$id: job.json has no slurm_job_id: it did not run under SLURM"
  info=$(scontrol show job "$job") || fail "$id: slurmctld does not know job $job"
  grep -q "JobState=COMPLETED" <<<"$info" || fail "$id: job $job is not COMPLETED: $info"
  grep -q "TresPerJob=gres:gpu:1" <<<"$info" || fail "$id: job $job did not request one GPU: $info"
  grep -q "_job_complete: JobId=$job WEXITSTATUS 0" "$CTLD_LOG" || fail "$id: job $job not in $CTLD_LOG"
  echo "$id: ran as SLURM job $job (COMPLETED, gres:gpu:1, node $(grep -o ' NodeList=[^ ]*' <<<"$info" | head -1 | cut -d= -f2))"
done
if [ -n "$cancelled" ]; then
  cid=$(run_id "$SCANCEL_CELL")
  job=$(json_field "results/$SCALE/runs/$cid/job.json" slurm_job_id)
  [ "$job" != "$cancelled" ] || fail "$cid: finished as the cancelled job $cancelled"
  grep -Eq "JobId=$cancelled( |$).*(CANCEL|kill|KILL)|(CANCEL|kill|KILL).*JobId=$cancelled( |$)" "$CTLD_LOG" ||
    fail "slurmctld did not log the cancellation of $cancelled"
  resumed=$(json_field "results/$SCALE/runs/$cid/job.json" resumed_from)
  [ -n "$resumed" ] || fail "$cid: the retry after scancel did not resume from a checkpoint"
  echo "$cid: job $cancelled cancelled, retried as job $job, resumed from $resumed"
fi
for id in $(python -c 'import sys; from centralflows.plan.grid import plan; from centralflows.plan.workflow import load_config; print(*plan(load_config("config.yaml"), sys.argv[1]).runs)' "$SCALE"); do
  [[ " ${ids[*]} " == *" $id "* ]] && continue
  [ -z "$(json_field "results/$SCALE/runs/$id/job.json" slurm_job_id)" ] || fail "$id (outside the subset) was rerun"
done
python .ci/compare_tables.py "$REF" "results/$SCALE/tables" || fail "SLURM tables differ from the local run's"
echo "SLURM test passed"
