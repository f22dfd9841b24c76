#!/usr/bin/env bash
# Runs every test: installs and starts the real local servers (Apache Kafka, ClickHouse) if
# needed, then the unit and integration tests of the whole workspace against them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
deploy/local/install.sh
deploy/local/start.sh
cargo test --workspace --locked "$@"
