#!/usr/bin/env bash
# Installs what the local pipeline needs and is missing: build tools for rdkafka (cmake, libcurl
# and OpenSSL headers: TLS and SASL/SCRAM; the openssl tool makes the secured test's
# certificates), ClickHouse from Debian's packages, and the Apache Kafka jars from Maven Central
# (version pinned in deploy/kafka/pom.xml). Idempotent: a second run changes nothing.
# `--browser` also installs Debian's Chromium and ChromeDriver, for the workbench's browser test,
# and poppler-utils (pdftotext, pdftoppm), with which the tests read the periodic report back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# prometheus: the local monitoring server, and promtool for the alerting rules' tests.
# zookeeper: replication of the ClickHouse servers of deploy/local/cluster.sh.
packages=(clickhouse-server clickhouse-client cmake libcurl4-openssl-dev libssl-dev openssl pkg-config prometheus zookeeper)
[ "${1:-}" = "--browser" ] && packages+=(chromium chromium-driver poppler-utils)
# The tests' Python client needs venv (Debian's python3 ships it separately).
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d keeps the package from starting its system service: we run our own server.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | run_as_root tee /usr/sbin/policy-rc.d >/dev/null
    run_as_root chmod +x /usr/sbin/policy-rc.d
    trap 'run_as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v java >/dev/null || { log "java (17+) is required for the Kafka broker"; exit 1; }
command -v mvn >/dev/null || { log "maven is required to fetch the Kafka jars"; exit 1; }

pom="$REPO_ROOT/deploy/kafka/pom.xml"
stamp="$KAFKA_LIBS/.pom.sha256"
want="$(sha256sum "$pom" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "fetching Apache Kafka jars into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime
  echo "$want" >"$stamp"
fi
log "install complete"
