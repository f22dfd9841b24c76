#!/usr/bin/env bash
# Runs every test: installs and starts the real local servers (Apache Kafka, ClickHouse) if
# needed (and Debian's Chromium for the browser test), then the unit and integration tests of the whole workspace against them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
deploy/local/install.sh --browser   # Chromium + ChromeDriver for the workbench's browser test
deploy/local/start.sh
cargo test --workspace --locked "$@"
