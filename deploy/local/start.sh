#!/usr/bin/env bash
# Starts ClickHouse and an Apache Kafka broker (KRaft, one node) on 127.0.0.1 with their data
# under $PV_STATE and waits until both answer. The topics come from the configuration:
# `pv topics apply` (run.sh runs it once pv is built).
# Idempotent: a server that already answers is left alone.
# PV_START (default "clickhouse kafka") picks the parts to start; with PV_STATE and the
# port variables of env.sh, the fault-injection tests start private servers they can kill.
# Secured listeners (off unless asked for): KAFKA_SECURE_PORT adds a SASL_SSL listener (SCRAM-SHA-512)
# and CH_HTTPS_PORT an HTTPS port, with a CA, a certificate for 127.0.0.1/localhost and passwords
# for the user `pv` generated under $PV_STATE/tls (clients trust tls/ca.pem; the passwords are in
# tls/kafka-pv.password and tls/clickhouse-pv.password).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PV_START="${PV_START:-clickhouse kafka}"
starting() { [[ " $PV_START " == *" $1 "* ]]; }
CONF="$REPO_ROOT/deploy/local/conf"
mkdir -p "$LOG_DIR" "$CH_DATA" "$KAFKA_DATA"

[ -d "$KAFKA_LIBS" ] && command -v clickhouse-server >/dev/null || {
  log "servers are not installed: run deploy/local/install.sh first"; exit 1; }

ch_up() { curl -fsS --max-time 2 "$CH_URL/?query=SELECT%201" >/dev/null 2>&1; }
kafka_port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }

# ---------------------------------------------------------------- TLS and passwords
TLS_DIR="$PV_STATE/tls"
# make_tls: a CA, a server certificate for localhost and 127.0.0.1 signed by it, and the
# passwords, once per state folder.
make_tls() {
  [ -f "$TLS_DIR/server.pem" ] && return
  mkdir -p "$TLS_DIR" && chmod 700 "$TLS_DIR"
  log "generating a test CA, a server certificate and passwords in $TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=pv local CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile server.ext -out server.crt
    cat server.key server.crt >server.pem   # Kafka's PEM key store: PKCS#8 key, then the chain
    openssl rand -hex 16 >kafka-pv.password
    openssl rand -hex 16 >clickhouse-pv.password
    chmod 600 ./*.key ./*.password server.pem
  ) >"$LOG_DIR/tls.log" 2>&1 || { log "generating certificates failed:"; cat "$LOG_DIR/tls.log" >&2; exit 1; }
}
if [ -n "${KAFKA_SECURE_PORT:-}" ] || [ -n "${CH_HTTPS_PORT:-}" ]; then make_tls; fi

# ---------------------------------------------------------------- ClickHouse
if ! starting clickhouse; then
  :
elif ch_up; then
  log "clickhouse already answers on $CH_URL"
else
  users_xml="$CONF/clickhouse-users.xml"
  https_xml=""
  if [ -n "${CH_HTTPS_PORT:-}" ]; then
    # The local users plus `pv`, who needs the generated password.
    users_xml="$CH_DATA/users.xml"
    pw_sha="$(tr -d '\n' <"$TLS_DIR/clickhouse-pv.password" | sha256sum | cut -d' ' -f1)"
    sed "s|    </users>|        <pv><password_sha256_hex>$pw_sha</password_sha256_hex><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></pv>\n    </users>|" \
      "$CONF/clickhouse-users.xml" >"$users_xml"
    https_xml="<https_port>$CH_HTTPS_PORT</https_port>
    <openSSL><server>
        <certificateFile>$TLS_DIR/server.crt</certificateFile>
        <privateKeyFile>$TLS_DIR/server.key</privateKeyFile>
        <verificationMode>none</verificationMode>
        <loadDefaultCAFile>false</loadDefaultCAFile>
        <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
        <preferServerCiphers>true</preferServerCiphers>
    </server></openSSL>"
  fi
  cat >"$CH_DATA/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$LOG_DIR/clickhouse-server.log</log>
        <errorlog>$LOG_DIR/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <http_port>$CH_HTTP_PORT</http_port>
    $https_xml
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$CH_DATA/data/</path>
    <tmp_path>$CH_DATA/tmp/</tmp_path>
    <user_files_path>$CH_DATA/user_files/</user_files_path>
    <format_schema_path>$CH_DATA/format_schemas/</format_schema_path>
    <users_config>$users_xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <!-- Every part written, merged and removed: pv-bench counts parts and merges per row here. -->
    <part_log>
        <database>system</database>
        <table>part_log</table>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </part_log>
</yandex>
XML
  log "starting clickhouse on $CH_URL"
  nohup clickhouse-server --config-file="$CH_DATA/config.xml" \
    >"$LOG_DIR/clickhouse.log" 2>&1 </dev/null &
  echo $! >"$PV_STATE/clickhouse.pid"
  wait_for clickhouse 60 ch_up
  log "clickhouse answers: version $(curl -fsS "$CH_URL/?query=SELECT%20version()")"
fi

# ---------------------------------------------------------------- Kafka
kafka_java() { java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$CONF/kafka-log4j2.properties" "$@"; }

if ! starting kafka; then
  :
elif kafka_port_up; then
  log "kafka already listens on $KAFKA_BOOTSTRAP"
else
  secure_listener="" secure_props="" add_scram=()
  if [ -n "${KAFKA_SECURE_PORT:-}" ]; then
    # SASL_SSL for clients (SCRAM-SHA-512, user `pv` created when the storage is formatted);
    # the broker's own traffic stays on the loopback PLAINTEXT listener.
    secure_listener=",SASL_SSL://127.0.0.1:$KAFKA_SECURE_PORT"
    secure_props="sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/server.pem"
    add_scram=(--add-scram "SCRAM-SHA-512=[name=pv,password=$(tr -d '\n' <"$TLS_DIR/kafka-pv.password")]")
  fi
  cat >"$KAFKA_DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT$secure_listener
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT$secure_listener
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
$secure_props
log.dirs=$KAFKA_DATA/data
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
PROPS
  if [ ! -f "$KAFKA_DATA/data/meta.properties" ]; then
    log "formatting kafka storage in $KAFKA_DATA/data"
    # The tool logs to stdout before the id: keep only the 22-character id (older state folders
    # stored the log line too, so the file is filtered the same way when read).
    cluster_id() { grep -oE '^[A-Za-z0-9_-]{22}$' | tail -1; }
    id="$(cluster_id 2>/dev/null <"$KAFKA_DATA/cluster-id" || true)"
    if [ -z "$id" ]; then
      id="$(kafka_java kafka.tools.StorageTool random-uuid | cluster_id)"
      echo "$id" >"$KAFKA_DATA/cluster-id"
    fi
    kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$id" \
      -c "$KAFKA_DATA/server.properties" "${add_scram[@]}" >"$LOG_DIR/kafka-format.log" 2>&1
  fi
  log "starting kafka on $KAFKA_BOOTSTRAP"
  KAFKA_HEAP="${KAFKA_HEAP:--Xmx768m -Xms256m}"
  # shellcheck disable=SC2086
  nohup java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF/kafka-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DATA/server.properties" \
    >"$LOG_DIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$PV_STATE/kafka.pid"
  wait_for kafka 90 kafka_port_up
fi

# ---------------------------------------------------------------- prometheus (PV_START=... prometheus)
if starting prometheus; then
  if curl -fsS --max-time 2 "http://$PROMETHEUS_LISTEN/-/ready" >/dev/null 2>&1; then
    log "prometheus already answers on $PROMETHEUS_LISTEN"
  else
    log "starting prometheus on $PROMETHEUS_LISTEN (rules: deploy/monitoring/alerts.yml)"
    mkdir -p "$PV_STATE/prometheus"
    nohup prometheus --config.file="$REPO_ROOT/deploy/monitoring/prometheus.yml" \
      --storage.tsdb.path="$PV_STATE/prometheus" --storage.tsdb.retention.time=7d \
      --web.listen-address="$PROMETHEUS_LISTEN" >"$LOG_DIR/prometheus.log" 2>&1 </dev/null &
    echo $! >"$PV_STATE/prometheus.pid"
    wait_for prometheus 30 curl -fsS -o /dev/null --max-time 2 "http://$PROMETHEUS_LISTEN/-/ready"
  fi
fi

log "ready: kafka $KAFKA_BOOTSTRAP, clickhouse $CH_URL (state in $PV_STATE)"
