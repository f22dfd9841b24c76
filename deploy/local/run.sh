#!/usr/bin/env bash
# The main job: the whole pipeline end to end on local defaults.
# Installs and starts Kafka and ClickHouse, builds pv, starts the gateway and the sink, sends a
# realistic simulated stream of clinic events through the gateway, waits until every event is
# in ClickHouse, and prints what was stored. Services keep running; deploy/local/stop.sh stops all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source deploy/local/env.sh

deploy/local/install.sh
deploy/local/start.sh
log "building pv (release)"
cargo build --release --locked --bin pv
PV="$REPO_ROOT/target/release/pv"
export PV_CONFIG="$REPO_ROOT/deploy/local/pv.toml"

"$PV" clinics init --count "${PV_CLINICS:-5}"
"$PV" migrate

deploy/local/stop.sh --services-only
for svc in gateway sink; do
  log "starting pv $svc (log: $LOG_DIR/pv-$svc.log)"
  nohup "$PV" "$svc" >"$LOG_DIR/pv-$svc.log" 2>&1 </dev/null &
  echo $! >"$PV_STATE/pv-$svc.pid"
done
for _ in $(seq 1 60); do
  curl -fsS --max-time 3 http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 3 http://127.0.0.1:8080/readyz >/dev/null || { log "gateway not ready"; tail -20 "$LOG_DIR/pv-gateway.log"; exit 1; }

sim_out="$PV_STATE/simulate.out"
"$PV" simulate --seed "${PV_SEED:-42}" --clinics "${PV_CLINICS:-5}" --patients "${PV_PATIENTS:-40}" --days "${PV_DAYS:-180}" | tee "$sim_out"
accepted="$(sed -n 's/.*: \([0-9]*\) events accepted.*/\1/p' "$sim_out")"
echo
"$PV" summary --expect "$accepted"

cat <<INFO

== where to look ==
  ClickHouse SQL:   clickhouse-client --port $CH_TCP_PORT --database pv
                    curl "$CH_URL/?query=SELECT+count()+FROM+pv.dose_administered+FINAL"
  gateway metrics:  curl http://127.0.0.1:8080/metrics
  sink metrics:     curl http://127.0.0.1:9464/metrics
  logs:             $LOG_DIR/pv-gateway.log, $LOG_DIR/pv-sink.log, $LOG_DIR/kafka.log
  send more:        $PV simulate --seed 7
  stop everything:  deploy/local/stop.sh
INFO
