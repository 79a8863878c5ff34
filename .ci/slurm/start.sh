#!/usr/bin/env bash
# Installs (apt, idempotent) and starts a real single-node SLURM cluster with 2 fake GPUs, as root and
# without systemd: munged, slurmctld and slurmd are started directly and write pid files that
# .ci/slurm/stop.sh uses. Waits until `sinfo` shows the node idle. Facts: ../shared/ECOSYSTEM.md.
#
#   sudo .ci/slurm/start.sh          # partition $SLURM_PARTITION (default: gpu), node = this host
#   .ci/slurm/stop.sh                # stops exactly the daemons started here, by pid
#
# The node is declared with at least 8 CPUs and 64 GB (SlurmdParameters=config_overrides), so the
# unmodified profiles/slurm (cpus_per_task: 4) fits twice (one job per fake GPU) and the `run` rule's
# mem_mb fits, on a 2-core CI machine;
# nothing is enforced (TaskPlugin=task/none), the jobs just share the real cores.
# Accounting is off (no slurmdbd): `sacct` does not work, so the profile polls with squeue and
# MinJobAge=600 keeps finished jobs visible to squeue/scontrol for 10 minutes.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "start.sh: must run as root" >&2; exit 1; }

PARTITION=${SLURM_PARTITION:-gpu}
HOST=$(hostname -s)
RUN=/run/slurm
STATE=${SLURM_CI_STATE:-/var/lib/slurm-ci} # pid files and the log paths CI reads
CPUS=$(nproc)
((CPUS < 8)) && CPUS=8
MEM_MB=${SLURM_CI_MEM_MB:-65536}

pkgs=(munge slurmctld slurmd slurm-client)
installed=$(dpkg-query -W -f='${Status}\n' "${pkgs[@]}" 2>/dev/null | grep -c '^install ok installed$' || true)
if [ "$installed" = "${#pkgs[@]}" ]; then
  echo "slurm: packages already installed"
else
  echo "slurm: apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

if [ -f "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
  echo "slurm: already running (pid files in $STATE); stop it with .ci/slurm/stop.sh" >&2
  exit 1
fi

mkdir -p "$STATE" "$RUN" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
chown slurm:slurm "$RUN" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown munge:munge /run/munge

# munge: key, daemon, self-test
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then mungekey --create --force; else
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
cp /run/munge/munged.pid "$STATE/munged.pid" 2>/dev/null || pgrep -n -x munged >"$STATE/munged.pid"
for _ in $(seq 50); do munge -n | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null

# fake GPUs: character devices (plain files leave CUDA_VISIBLE_DEVICES empty; no File= drains the node)
for i in 0 1; do [ -c "$RUN/fakegpu$i" ] || { rm -f "$RUN/fakegpu$i"; mknod "$RUN/fakegpu$i" c 1 3; }; done

cat >/etc/slurm/slurm.conf <<CONF
# Written by .ci/slurm/start.sh: a single-node CI cluster.
ClusterName=ci
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MinJobAge=600
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
cat >/etc/slurm/gres.conf <<CONF
NodeName=$HOST Name=gpu File=$RUN/fakegpu[0-1]
CONF

t0=$SECONDS
: >/var/log/slurm/slurmctld.log # fresh logs: CI greps them for this session's job ids
: >/var/log/slurm/slurmd.log
: >/var/log/slurm/jobcomp.log
chown slurm:slurm /var/log/slurm/*.log
/usr/sbin/slurmctld -i
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || { echo "slurmctld did not come up" >&2; tail -20 /var/log/slurm/slurmctld.log >&2; exit 1; }
cp "$RUN/slurmctld.pid" "$STATE/slurmctld.pid"
/usr/sbin/slurmd
for _ in $(seq 50); do [ -s "$RUN/slurmd.pid" ] && break; sleep 0.2; done
cp "$RUN/slurmd.pid" "$STATE/slurmd.pid"
for _ in $(seq 150); do
  [ "$(sinfo -h -n "$HOST" -o %t 2>/dev/null)" = idle ] && break
  sleep 0.2
done
if [ "$(sinfo -h -n "$HOST" -o %t)" != idle ]; then
  echo "slurm: node not idle:" >&2; sinfo -N -l >&2; tail -20 /var/log/slurm/slurmd.log >&2; exit 1
fi
echo "slurm: ready in $((SECONDS - t0)) s (partition $PARTITION, node $HOST, gres gpu:2)"
sinfo -o '%P %a %D %t %N %G'
