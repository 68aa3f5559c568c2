#!/usr/bin/env bash
# Test fixture: stop the daemons tests/slurm/start-cluster.sh started, by their PID files only
# (a PID that now belongs to another program is left alone).
set -uo pipefail
STATE=${DCLUST_SLURM_STATE:-/tmp/dclust-slurm}
rc=0

stop() {  # stop PIDFILE NAME
  local pf=$1 name=$2 p
  if [ ! -s "$pf" ]; then echo "stop-cluster: $name: no pid file ($pf)"; return; fi
  p=$(cat "$pf")
  if ! kill -0 "$p" 2>/dev/null; then echo "stop-cluster: $name: pid $p not running"; rm -f "$pf"; return; fi
  if [ "$(cat /proc/"$p"/comm 2>/dev/null)" != "$name" ]; then
    echo "stop-cluster: $name: pid $p is '$(cat /proc/"$p"/comm 2>/dev/null)', not $name: skipped" >&2
    rc=1; return
  fi
  kill -TERM "$p"
  for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$p" 2>/dev/null; then
    echo "stop-cluster: $name (pid $p) ignored SIGTERM for 15 s: SIGKILL" >&2; kill -KILL "$p"; sleep 0.5
  fi
  if kill -0 "$p" 2>/dev/null; then echo "stop-cluster: $name (pid $p) still alive" >&2; rc=1; return; fi
  rm -f "$pf"; echo "stop-cluster: stopped $name (pid $p)"
}

stop "$STATE/run/slurmd.pid"    slurmd
stop "$STATE/run/slurmctld.pid" slurmctld
stop /run/munge/munged.pid      munged

# Job processes that outlived the daemons (proctrack/linuxproc loses processes that were
# reparented, e.g. the batch step of a cancelled job): each is found by the cluster name in its
# environment, which only this cluster's jobs carry, and killed by its PID.
for env in /proc/[0-9]*/environ; do
  p=${env#/proc/}; p=${p%/environ}
  [ "$p" != "$$" ] || continue
  if { tr '\0' '\n' < "$env"; } 2>/dev/null | grep -qx 'SLURM_CLUSTER_NAME=dclust'; then
    echo "stop-cluster: killing leftover job process $p ($(tr '\0' ' ' < /proc/"$p"/cmdline 2>/dev/null | cut -c1-80))"
    kill -KILL "$p" 2>/dev/null || true
  fi
done
exit $rc
