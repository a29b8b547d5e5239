#!/usr/bin/env bash
# Stops the cluster tests/slurm/start.sh started: cancels its jobs, then the daemons named by
# its pid files (TERM, then KILL after a few seconds). Nothing else is touched.
set -uo pipefail
dir="${TICKETLAB_SLURM_DIR:-/tmp/ticketlab-slurm}"
[ -d "$dir" ] || exit 0
export SLURM_CONF="$dir/slurm.conf"
if [ -s "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null; then
    scancel --user=root >/dev/null 2>&1 || true
fi
for daemon in slurmd slurmctld munged; do
    pidfile="$dir/run/$daemon.pid"
    [ -s "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
done
exit 0
