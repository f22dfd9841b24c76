# Shared settings for the local servers; sourced by the other scripts in deploy/local/.
# Every path lives under one project-local state folder (default: <repo>/.state).
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PV_STATE="${PV_STATE:-$REPO_ROOT/.state}"
KAFKA_LIBS="${KAFKA_LIBS:-$PV_STATE/kafka-libs}"
KAFKA_DATA="$PV_STATE/kafka"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
CH_DATA="$PV_STATE/clickhouse"
CH_HTTP_PORT="${CH_HTTP_PORT:-8123}"
CH_TCP_PORT="${CH_TCP_PORT:-9000}"
CH_URL="http://127.0.0.1:$CH_HTTP_PORT"
LOG_DIR="$PV_STATE/log"
PROMETHEUS_LISTEN="${PROMETHEUS_LISTEN:-127.0.0.1:9090}"

log() { printf '[deploy] %s\n' "$*" >&2; }

# run_as_root CMD...: run CMD as root (directly when we are root, else via sudo).
run_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# wait_for NAME SECONDS CHECK...: poll CHECK every 0.3 s until it succeeds; else show the last
# lines of $WAIT_LOG_DIR/NAME.log (default $LOG_DIR) and exit.
wait_for() {
  local name="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name did not answer within ${secs}s; last log lines:"
      tail -n 30 "${WAIT_LOG_DIR:-$LOG_DIR}/$name.log" >&2 || true
      exit 1
    fi
    sleep 0.3
  done
}
