#!/usr/bin/env bash
# Runs the browser journeys against the debug binaries `cargo test` just built.
#
# Needs node (20+, for playwright-core) and chromium. Where either is missing the journeys are skipped with a
# loud message, so a machine with only Rust still passes its tests; in CI (CI=true) or
# with OUTPOST_BROWSER_TESTS=required a missing browser is a failure instead.
set -euo pipefail
cd "$(dirname "$0")"
required=${OUTPOST_BROWSER_TESTS:-}
[ "${CI:-}" = "true" ] && required=required

chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if ! command -v node >/dev/null || ! command -v npm >/dev/null || [ -z "$chromium" ]; then
  msg="browser journeys SKIPPED: they need node, npm and chromium (Debian: apt-get install nodejs npm chromium)"
  if [ "$required" = "required" ]; then
    echo "error: $msg" >&2
    exit 1
  fi
  echo
  echo "!!! $msg"
  exit 0
fi
export CHROMIUM="$chromium"

# playwright-core from the lock file; it downloads no browser.
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
cargo build -q -p control-plane
node --test --test-concurrency=1 --test-reporter=spec ./*.test.js
