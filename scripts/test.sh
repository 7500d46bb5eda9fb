#!/usr/bin/env bash
# The README's test command. Unit tests, then the end-to-end suite (real binaries on
# 127.0.0.1, real TLS), then the browser journeys (tests/browser: Debian's chromium driven
# by playwright-core, clicking through the real pages).
#
# With TEST_DATABASE_URL=postgres://… the control plane under test uses a fresh PostgreSQL
# database per test instead of SQLite; the build then has the `postgres` feature (libpq).
# The browser journeys run on the SQLite pass only: they test what a browser sees, which
# does not depend on the database.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  features=(--features control-plane/postgres)
fi
cargo test --workspace --all-targets ${features[@]+"${features[@]}"} "$@"
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  tests/browser/run.sh
fi
