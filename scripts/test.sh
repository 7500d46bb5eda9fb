#!/usr/bin/env bash
# The README's test command. Unit tests, then the end-to-end suite (real binaries on
# 127.0.0.1, real TLS). With TEST_DATABASE_URL=postgres://… the control plane under test
# uses a fresh PostgreSQL database per test instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
