#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the Slurm test (idempotent).
#
#   eval "$(tests/slurm/start.sh)"      # exports SLURM_CONF for the clients
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge if missing, writes a private
# configuration under $TICKETLAB_SLURM_DIR (default /tmp/ticketlab-slurm), and starts munged,
# slurmctld and slurmd there with pid files, so tests/slurm/stop.sh stops exactly these. Runs as
# root without systemd or cgroups (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none).
# A daemon already running from this folder is left as it is. Prints the export line on stdout
# and everything else on stderr.
set -euo pipefail
dir="${TICKETLAB_SLURM_DIR:-/tmp/ticketlab-slurm}"
log() { echo "slurm: $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >&2
fi

mkdir -p "$dir"/{munge-socket,munge-key,state,spool,log,run}
chmod 0755 "$dir/munge-socket"
chmod 0700 "$dir/munge-key"
[ -s "$dir/munge-key/munge.key" ] || { head -c 1024 /dev/urandom > "$dir/munge-key/munge.key"; chmod 0400 "$dir/munge-key/munge.key"; }
socket="$dir/munge-socket/munge.socket"
cpus="$(nproc)"
mem="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))"
cat > "$dir/slurm.conf" <<CONF
ClusterName=ticketlab-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! running "$dir/run/munged.pid"; then
    rm -f "$socket" "$socket.lock"
    munged --socket="$socket" --key-file="$dir/munge-key/munge.key" --pid-file="$dir/run/munged.pid" \
        --log-file="$dir/log/munged.log" --seed-file="$dir/run/munge.seed" >&2
fi
running "$dir/run/slurmctld.pid" || slurmctld -i -f "$SLURM_CONF" >&2
running "$dir/run/slurmd.pid" || slurmd -N localhost -f "$SLURM_CONF" >&2

for _ in $(seq 60); do
    state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)"
    case "$state" in
        idle*|mixed*|allocated*) log "node localhost is $state"; echo "export SLURM_CONF=$SLURM_CONF"; exit 0 ;;
        down*|drain*) scontrol update NodeName=localhost State=RESUME >&2 2>/dev/null || true ;;
    esac
    sleep 0.5
done
log "the node did not come up; logs in $dir/log" >&2
exit 1
