#!/usr/bin/env bash
# Stops the pv services started by run.sh, then the local Kafka broker and ClickHouse started by
# start.sh. Data stays in $PV_STATE; pass --wipe to delete it too, or --services-only to stop
# only the pv services. Idempotent: stopping a stopped server is harmless.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

stop_pid() {
  local name="$1" pidfile="$PV_STATE/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 30s; killing"; kill -KILL "$pid" || true; fi
  fi
  rm -f "$pidfile"
}
stop_pid pv-gateway
stop_pid pv-enrich
stop_pid pv-sink
stop_pid pv-signals
stop_pid pv-dashboard
[ "${1:-}" = "--services-only" ] && exit 0
stop_pid prometheus
stop_pid kafka
stop_pid clickhouse
if [ "${1:-}" = "--wipe" ]; then
  log "wiping $PV_STATE (keeping downloaded jars)"
  find "$PV_STATE" -mindepth 1 -maxdepth 1 ! -name kafka-libs -exec rm -rf {} +
fi
