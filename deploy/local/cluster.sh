#!/usr/bin/env bash
# A local multi-node cluster on loopback, to prove the pipeline beyond one machine: ZooKeeper,
# three Kafka brokers (KRaft, each broker and controller: RF 3, min.insync.replicas 2) and three
# ClickHouse 18.16 servers forming the cluster `pv`: shard 1 on ch1 and ch2 (replicas), shard 2
# on ch3. State under $PV_STATE/cluster; the settings pv needs are written to
# $PV_STATE/cluster/pv.toml.
#
#   cluster.sh start            start every node that is not running, wait until all answer
#   cluster.sh stop [NODE...]   stop the named nodes (zookeeper kafka1..3 ch1..3), or all (SIGTERM)
#   cluster.sh kill [NODE...]   SIGKILL the named nodes, or all
#   cluster.sh status           which nodes run
#
# Ports: CLUSTER_PORT_BASE (default 19100) + 0 ZooKeeper; + 10+i Kafka i, + 20+i its controller;
# + 30+j ClickHouse j HTTP, + 40+j native, + 50+j interserver. Lean JVMs: about 0.8 GiB in all.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
CONF="$REPO_ROOT/deploy/local/conf"
BASE="${CLUSTER_PORT_BASE:-19100}"
DIR="$PV_STATE/cluster"
LOGS="$DIR/log"
WAIT_LOG_DIR="$LOGS"   # wait_for (env.sh) shows a node's log from here
ZK_PORT=$((BASE))
KAFKA_NODES=(kafka1 kafka2 kafka3)
CH_NODES=(ch1 ch2 ch3)
JVM_LEAN=(-Xmx256m -Xms64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)
mkdir -p "$LOGS"

kafka_port() { echo $((BASE + 10 + ${1#kafka})); }
controller_port() { echo $((BASE + 20 + ${1#kafka})); }
ch_http() { echo $((BASE + 30 + ${1#ch})); }
ch_tcp() { echo $((BASE + 40 + ${1#ch})); }
ch_interserver() { echo $((BASE + 50 + ${1#ch})); }

pid_of() { cat "$DIR/$1.pid" 2>/dev/null || true; }
running() { local pid; pid="$(pid_of "$1")"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# launch NAME CMD...: start CMD in the background, its output in the node's log.
launch() {
  local name="$1"; shift
  nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
}

# ---------------------------------------------------------------- ZooKeeper
# The probe has its own timeout: a `srvr` sent while ZooKeeper still loads its database can
# leave the socket open for good (a NullPointerException closing it), and `cat` would wait forever.
zk_serving() {
  [[ "$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf srvr >&3 && cat <&3' _ "$ZK_PORT" 2>/dev/null)" == *Mode:* ]]
}
start_zookeeper() {
  mkdir -p "$DIR/zookeeper"
  cat >"$DIR/zookeeper/zoo.cfg" <<CFG
dataDir=$DIR/zookeeper
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
tickTime=2000
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
CFG
  launch zookeeper java "${JVM_LEAN[@]}" -Dzookeeper.log.dir="$LOGS" \
    -cp "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$DIR/zookeeper/zoo.cfg"
  # It answers `ruok` before it accepts sessions: wait until `srvr` shows its mode.
  wait_for zookeeper 60 zk_serving
}

# ---------------------------------------------------------------- Kafka
voters() {
  local out="" n
  for n in "${KAFKA_NODES[@]}"; do out+="${out:+,}${n#kafka}@127.0.0.1:$(controller_port "$n")"; done
  echo "$out"
}
bootstrap() {
  local out="" n
  for n in "${KAFKA_NODES[@]}"; do out+="${out:+,}127.0.0.1:$(kafka_port "$n")"; done
  echo "$out"
}
kafka_java() { java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$CONF/kafka-log4j2.properties" "$@"; }

start_kafka() {
  local name="$1" data="$DIR/$1"
  mkdir -p "$data"
  cat >"$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=${name#kafka}
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$name"),CONTROLLER://127.0.0.1:$(controller_port "$name")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$name")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data/data
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
PROPS
  if [ ! -f "$data/data/meta.properties" ]; then
    # One cluster id for all three (the tool logs to stdout before the id: keep the id only).
    if [ ! -s "$DIR/kafka-cluster-id" ]; then
      kafka_java kafka.tools.StorageTool random-uuid | grep -oE '^[A-Za-z0-9_-]{22}$' | tail -1 >"$DIR/kafka-cluster-id"
    fi
    kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$(cat "$DIR/kafka-cluster-id")" \
      -c "$data/server.properties" >>"$LOGS/$name.log" 2>&1
  fi
  launch "$name" java "${JVM_LEAN[@]}" -Dlog4j2.configurationFile="$CONF/kafka-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$data/server.properties"
}

# ---------------------------------------------------------------- ClickHouse
# The shard of node chJ: ch1 and ch2 hold shard 1, ch3 shard 2.
ch_shard() { case "$1" in ch3) echo 02 ;; *) echo 01 ;; esac; }
ch_replica_xml() { echo "<replica><host>127.0.0.1</host><port>$(ch_tcp "$1")</port></replica>"; }

start_clickhouse() {
  local name="$1" data="$DIR/$1"
  mkdir -p "$data"
  cat >"$data/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>information</level><log>$LOGS/$name.server.log</log><errorlog>$LOGS/$name.err.log</errorlog><size>50M</size><count>2</count></logger>
    <http_port>$(ch_http "$name")</http_port>
    <tcp_port>$(ch_tcp "$name")</tcp_port>
    <interserver_http_port>$(ch_interserver "$name")</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>$data/data/</path>
    <tmp_path>$data/tmp/</tmp_path>
    <user_files_path>$data/user_files/</user_files_path>
    <format_schema_path>$data/format_schemas/</format_schema_path>
    <users_config>$CONF/clickhouse-users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <zookeeper><node><host>127.0.0.1</host><port>$ZK_PORT</port></node></zookeeper>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
    <remote_servers>
        <pv>
            <shard><internal_replication>true</internal_replication>$(ch_replica_xml ch1)$(ch_replica_xml ch2)</shard>
            <shard><internal_replication>true</internal_replication>$(ch_replica_xml ch3)</shard>
        </pv>
    </remote_servers>
    <macros><shard>$(ch_shard "$name")</shard><replica>$name</replica></macros>
</yandex>
XML
  launch "$name" clickhouse-server --config-file="$data/config.xml"
}
ch_up() { curl -fsS --max-time 2 "http://127.0.0.1:$(ch_http "$1")/?query=SELECT%201" >/dev/null 2>&1; }

# ---------------------------------------------------------------- commands
node_start() {
  case "$1" in
    zookeeper) start_zookeeper ;;
    kafka*) start_kafka "$1" ;;
    ch*) start_clickhouse "$1" ;;
  esac
}

# The port a node answers on.
node_port() {
  case "$1" in
    zookeeper) echo "$ZK_PORT" ;;
    kafka*) kafka_port "$1" ;;
    ch*) ch_http "$1" ;;
  esac
}

# start_free NAME: start the node, unless another process holds its port (a cluster left
# running from another state folder would answer in its place, with other data).
start_free() {
  if port_up "$(node_port "$1")"; then
    log "$1: port $(node_port "$1") is taken by another process (another cluster still running? stop it, or set CLUSTER_PORT_BASE)"
    exit 1
  fi
  node_start "$1"
}

cmd_start() {
  [ -d "$KAFKA_LIBS" ] && command -v clickhouse-server >/dev/null && [ -f /usr/share/java/zookeeper.jar ] || {
    log "servers are not installed: run deploy/local/install.sh first"; exit 1; }
  # ZooKeeper first: a ClickHouse server with replicated tables does not boot without it.
  local n
  for n in zookeeper "${KAFKA_NODES[@]}" "${CH_NODES[@]}"; do running "$n" || start_free "$n"; done
  for n in "${KAFKA_NODES[@]}"; do wait_for "$n" 90 port_up "$(kafka_port "$n")"; done
  for n in "${CH_NODES[@]}"; do wait_for "$n" 60 ch_up "$n"; done
  cat >"$DIR/pv.toml" <<TOML
# pv settings for the local cluster of deploy/local/cluster.sh (merge into a full pv.toml).
[kafka]
bootstrap_servers = "$(bootstrap)"
replication_factor = 3
min_insync_replicas = 2

[clickhouse]
url = "http://127.0.0.1:$(ch_http ch1)"
cluster = "pv"
TOML
  log "cluster ready: kafka $(bootstrap); clickhouse http://127.0.0.1:$(ch_http ch1) (cluster pv: shard 1 ch1+ch2, shard 2 ch3); settings in $DIR/pv.toml"
}

# node_stop SIGNAL NAME: signal the node and wait until it is gone.
node_stop() {
  local signal="$1" name="$2" pid
  pid="$(pid_of "$name")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || { rm -f "$DIR/$name.pid"; return 0; }
  log "stopping $name (SIG$signal, pid $pid)"
  kill -"$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 30s; killing"; kill -KILL "$pid" || true; sleep 0.5; fi
  rm -f "$DIR/$name.pid"
}

cmd="${1:-start}"; shift || true
case "$cmd" in
  start) cmd_start ;;
  stop|kill)
    signal=TERM; [ "$cmd" = kill ] && signal=KILL
    if [ $# -gt 0 ]; then
      for n in "$@"; do node_stop "$signal" "$n"; done
    else
      # ClickHouse before ZooKeeper; brokers one by one (stopping all at once can hang the last).
      for n in "${CH_NODES[@]}" "${KAFKA_NODES[@]}" zookeeper; do node_stop "$signal" "$n"; done
    fi ;;
  status) for n in zookeeper "${KAFKA_NODES[@]}" "${CH_NODES[@]}"; do
            if running "$n"; then echo "$n running (pid $(pid_of "$n"))"; else echo "$n stopped"; fi
          done ;;
  *) log "usage: cluster.sh start | stop [NODE...] | kill [NODE...] | status"; exit 2 ;;
esac
