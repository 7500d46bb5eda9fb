#!/usr/bin/env bash
# The README's test command. Unit tests, then the end-to-end suite (real binaries on
# 127.0.0.1, real TLS), then the browser journeys (tests/browser: Debian's chromium driven
# by playwright-core, clicking through the real pages).
#
# With TEST_DATABASE_URL=postgres://… the control plane under test uses a fresh PostgreSQL
# database per test instead of SQLite; the build then has the `postgres` feature (libpq).
# That pass runs the control plane's package only (its unit tests and the end-to-end suite,
# whose nodes are the same binary): the node, the shared crates and the benchmarks use no
# control-plane database, so the SQLite pass already ran everything they have. The browser
# journeys run on the SQLite pass only too: they test what a browser sees, which does not
# depend on the database.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  cargo test -p control-plane --all-targets --features control-plane/postgres "$@"
else
  cargo test --workspace --all-targets "$@"
  tests/browser/run.sh
fi
