#!/usr/bin/env bash
# Runs every test: installs and starts the real local servers (Apache Kafka, ClickHouse) if
# needed (and Debian's Chromium for the browser test), then the unit and integration tests of the whole workspace against them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
deploy/local/install.sh --browser   # Chromium + ChromeDriver for the workbench's browser test
deploy/local/start.sh
# The third-party Python client of tests/python_client.rs (confluent-kafka, fastavro, requests;
# pinned in tests/python/requirements.txt), in its own virtual environment under .state/.
[ -x .state/pyenv/bin/python ] || python3 -m venv .state/pyenv
.state/pyenv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
cargo test --workspace --locked "$@"
