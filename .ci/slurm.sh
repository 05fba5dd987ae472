#!/usr/bin/env bash
# A throw-away one-node SLURM cluster on 127.0.0.1 for the tests (CI and local use).
#
#   .ci/slurm.sh start DIR   write DIR/slurm.conf, start munged, slurmctld and slurmd (as root);
#                            prints the SLURM_CONF=... to export for sbatch, squeue, scancel
#   .ci/slurm.sh stop DIR    stop the three daemons (the folder stays; delete it to start clean)
#
# Uses Debian's packages (apt-get install slurm-wlm munge). The configuration works in an
# unprivileged container without systemd or cgroup delegation: processes are tracked through
# /proc (proctrack/linuxproc), no task binding or accounting. The node offers 4 CPUs whatever
# the machine has (config_overrides), so three one-CPU array tasks run at the same time on 2
# cores. Ports: $BNSEARCH_SLURM_PORT (slurmctld) and the next one (slurmd), default 16817.
set -euo pipefail

cmd=${1:-start}
dir=$(realpath -m "${2:-/tmp/bnsearch-slurm}")
port=${BNSEARCH_SLURM_PORT:-16817}

stop_pidfile() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

case "$cmd" in
start)
    for tool in munged slurmctld slurmd sbatch; do
        if ! command -v "$tool" >/dev/null; then
            echo "slurm.sh: $tool not found; install with: apt-get install -y slurm-wlm munge" >&2
            exit 1
        fi
    done
    if [[ $(id -u) != 0 ]]; then
        echo "slurm.sh: needs root (slurmd starts jobs as their user)" >&2
        exit 1
    fi
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    chmod 700 "$dir/munge"
    if [[ ! -f "$dir/munge/munge.key" ]]; then
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$dir/munge/munge.key"
    fi
    cat >"$dir/slurm.conf" <<CONF
ClusterName=bnsearchtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$dir/slurm.conf"
    if ! { [[ -f "$dir/munge/munged.pid" ]] && kill -0 "$(cat "$dir/munge/munged.pid")" 2>/dev/null; }; then
        munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
            --log-file="$dir/munge/munged.log" --pid-file="$dir/munge/munged.pid" \
            --seed-file="$dir/munge/munged.seed"
    fi
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/slurmd.pid"
    slurmctld -c -f "$SLURM_CONF"  # -c: a clean state, no jobs from an earlier start
    slurmd -f "$SLURM_CONF" -N localhost
    for _ in $(seq 100); do
        if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
            echo "SLURM_CONF=$SLURM_CONF"
            exit 0
        fi
        sleep 0.2
    done
    echo "slurm.sh: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    exit 1
    ;;
stop)
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munge/munged.pid"
    ;;
*)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
