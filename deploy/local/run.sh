#!/usr/bin/env bash
# The main job: the whole pipeline end to end on local defaults.
# Installs and starts Kafka and ClickHouse, builds pv, starts the gateway, the enricher and the
# sink, sends a realistic simulated stream of clinic events through the gateway, waits until
# every event is enriched and in ClickHouse, prints what was stored, runs the signals service once
# (its report: which harm, in whom, how much more than expected, how sure, since when), scores its
# harm signals against what the simulator planted, and starts the workbench with a demo user per
# role (its URL and sign-ins are the last lines). Services keep running;
# deploy/local/stop.sh stops all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source deploy/local/env.sh

deploy/local/install.sh
PV_START="clickhouse kafka prometheus" deploy/local/start.sh
log "building pv (release)"
cargo build --release --locked --bin pv
PV="$REPO_ROOT/target/release/pv"
export PV_CONFIG="$REPO_ROOT/deploy/local/pv.toml"
# Every topic as configured ([kafka] replication, [topics] partitions); drift is reported, and a
# topic that differs is left as it is (the enricher refuses a repartitioned raw topic itself).
"$PV" topics apply || log "warning: topics differ from the configuration (above); the pipeline runs on them"

"$PV" clinics init --count "${PV_CLINICS:-5}"
# The HMAC secret of patient pseudonyms: created once, kept with the local state.
if [ ! -s "$PV_STATE/pseudonym.secret" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PV_STATE/pseudonym.secret")
fi
"$PV" migrate

deploy/local/stop.sh --services-only
for svc in gateway enrich sink; do
  log "starting pv $svc (log: $LOG_DIR/pv-$svc.log)"
  nohup "$PV" "$svc" >"$LOG_DIR/pv-$svc.log" 2>&1 </dev/null &
  echo $! >"$PV_STATE/pv-$svc.pid"
done
for _ in $(seq 1 60); do
  curl -fsS --max-time 3 http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 3 http://127.0.0.1:8080/readyz >/dev/null || { log "gateway not ready"; tail -20 "$LOG_DIR/pv-gateway.log"; exit 1; }

# A fixed end date: the same seed gives the same events (same ids), so running the main job
# again re-sends them and they count once, instead of piling shifted copies of the same patients.
PV_END="${PV_END:-2026-11-01}"
"$PV" simulate --seed "${PV_SEED:-42}" --clinics "${PV_CLINICS:-5}" --patients "${PV_PATIENTS:-240}" --days "${PV_DAYS:-365}" --end "$PV_END" \
  | tee "$PV_STATE/simulate.out"
echo
"$PV" summary --wait | tee "$PV_STATE/summary.out"
# End-to-end throughput: time to send (gateway, durable in Kafka) + time until the sink caught up.
accepted="$(sed -n 's/.*: \([0-9]*\) events accepted and durable in \([0-9.]*\) s.*/\1 \2/p' "$PV_STATE/simulate.out")"
waited="$(sed -n 's/.*(\([0-9.]*\) s of waiting).*/\1/p' "$PV_STATE/summary.out")"
echo
echo "== signals run (results in ClickHouse signal_results; changes on the pv.signals topic and in signal_changes) =="
# As received now; follow-up and the period window end with the latest administration received.
"$PV" signals --once
echo
echo "== the signals run's harm signals against what the simulator planted (.state/ground-truth.json) =="
"$PV" score

echo
echo "== the regulators' sample: the periodic report for the last six simulated months, locked now =="
PV_LOCK="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
sleep 1  # the lock must not be in the future, to the second
REPORT_DIR="$PV_STATE/reports/periodic"
REPORT_FROM="$(date -d "$PV_END - 6 months" +%F)"
REPORT_TO="$(date -d "$PV_END - 1 day" +%F)"
"$PV" report periodic --from "$REPORT_FROM" --to "$REPORT_TO" --lock "$PV_LOCK" --out "$REPORT_DIR"
"$PV" report icsr --from "$REPORT_FROM" --to "$REPORT_TO" --serious --lock "$PV_LOCK" \
  --out "$PV_STATE/reports/serious-cases.e2b.xml"

# From here the signals service runs on its schedule, as it does in production (every 5 min;
# /metrics on 9467 for the failing-runs alert).
log "starting pv signals on its schedule (log: $LOG_DIR/pv-signals.log)"
nohup "$PV" signals >"$LOG_DIR/pv-signals.log" 2>&1 </dev/null &
echo $! >"$PV_STATE/pv-signals.pid"

# The workbench, with one demo user per role (local demo passwords; `pv users add` for real ones).
for u in "officer safety_officer" "regulator regulator" "clinic01 clinic clinic-01"; do
  set -- $u
  PV_USER_PASSWORD="$1-demo-password" "$PV" users add "$1" --role "$2" ${3:+--clinic "$3"} >/dev/null
done
log "starting pv dashboard (log: $LOG_DIR/pv-dashboard.log)"
nohup "$PV" dashboard >"$LOG_DIR/pv-dashboard.log" 2>&1 </dev/null &
echo $! >"$PV_STATE/pv-dashboard.pid"
for _ in $(seq 1 60); do
  curl -fsS --max-time 3 http://127.0.0.1:8090/healthz >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 3 http://127.0.0.1:8090/healthz >/dev/null || { log "workbench not ready"; tail -20 "$LOG_DIR/pv-dashboard.log"; exit 1; }

awk -v a="$accepted" -v w="$waited" 'BEGIN { split(a, x, " "); t = x[2] + w;
  printf "\nend to end: %d events from the first POST to committed rows in ClickHouse in %.2f s (%.0f events/s)\n", x[1], t, x[1] / t }'

cat <<INFO

== where to look ==
  ClickHouse SQL:   clickhouse-client --port $CH_TCP_PORT --database pv
                    curl "$CH_URL/?query=SELECT+count()+FROM+pv.doses+FINAL"
  metrics:          curl http://127.0.0.1:9466/metrics (gateway, admin listener), :9465/metrics (enrich), :9464/metrics (sink), :9467/metrics (signals)
  logs:             $LOG_DIR/pv-gateway.log, pv-enrich.log, pv-sink.log, pv-signals.log, kafka.log
  send more:        $PV simulate --seed 7
  monitoring:       http://127.0.0.1:9090/alerts  (Prometheus scraping the services; rules in deploy/monitoring/alerts.yml)
  stop everything:  deploy/local/stop.sh

== the regulators' outputs (made again the same, byte for byte, with the same --lock) ==
  periodic report:  $REPORT_DIR/periodic-report.pdf  (tables/*.csv, charts/*.svg, manifest.json beside it)
  serious cases:    $PV_STATE/reports/serious-cases.e2b.xml  (ICH E2B(R3); no MedDRA codes with the demo dictionary)
  regenerate:       $PV report periodic --from $REPORT_FROM --to $REPORT_TO --lock $PV_LOCK --out DIR

== the safety officers' workbench ==
  open:             http://127.0.0.1:8090/   (JSON API under /api/v1; log $LOG_DIR/pv-dashboard.log)
  safety officer:   officer / officer-demo-password      (everything, narratives, workflow decisions)
  regulator:        regulator / regulator-demo-password  (read-only, no narratives)
  clinic user:      clinic01 / clinic01-demo-password    (clinic-01's cases and counts only)
INFO
