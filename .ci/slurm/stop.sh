#!/usr/bin/env bash
# Stops the daemons .ci/slurm/start.sh started, by the pids it recorded (never by name), and waits
# until each one has exited. Safe to call twice or when nothing was started.
set -uo pipefail
STATE=${SLURM_CI_STATE:-/var/lib/slurm-ci}
for d in slurmd slurmctld munged; do
  f="$STATE/$d.pid"
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stop.sh: $d ($pid) ignored SIGTERM, sending SIGKILL" >&2
      kill -KILL "$pid"
    fi
    echo "stopped $d (pid $pid)"
  fi
  rm -f "$f"
done
