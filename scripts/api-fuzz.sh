#!/usr/bin/env bash
# Fuzzes the JSON API against its own OpenAPI document with schemathesis: starts the real
# control plane on 127.0.0.1 (SQLite, a fresh data dir, the manual provisioner so no node
# processes start, the dev mail outbox), makes a user and an API token with the CLI, a
# workspace and an agent to aim at, then lets schemathesis call every operation with
# generated valid and invalid input. Fails on any server error (5xx), a status code the
# document does not list, a response that does not match its schema, and the like.
#
#   scripts/api-fuzz.sh                      # about three minutes
#   API_FUZZ_MAX_TIME=30 scripts/api-fuzz.sh # a quick look
#
# schemathesis (pinned below) is installed into a virtualenv under target/ on first use.
# Knobs: API_FUZZ_MAX_EXAMPLES (cases per operation and phase, default 25),
# API_FUZZ_MAX_TIME (seconds for the whole run, default 180), API_FUZZ_SEED, API_FUZZ_VENV.
# The report (JUnit XML and the requests of failing cases) lands in target/api-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
max_examples=${API_FUZZ_MAX_EXAMPLES:-25}
max_time=${API_FUZZ_MAX_TIME:-180}
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
venv=$(realpath -m "${API_FUZZ_VENV:-$target_dir/api-fuzz-venv}")
report_dir=$target_dir/api-fuzz

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -q -p control-plane
bin=$target_dir/debug/control-plane

work=$(mktemp -d /tmp/outpost-api-fuzz.XXXXXX)
cp_pid=""
cleanup() {
  if [ -n "$cp_pid" ]; then kill "$cp_pid" 2>/dev/null || true; wait "$cp_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

db=(--data-dir "$work/data")
# Key validation goes nowhere: a closed port on this machine answers at once (loopback
# provider addresses need the explicit switch, as for the e2e suite's fakes).
export OUTPOST_ALLOW_LOCAL_PROVIDERS=true
export OUTPOST_OPENAI_BASE_URL=http://127.0.0.1:9/v1 OUTPOST_ANTHROPIC_BASE_URL=http://127.0.0.1:9/v1
export OUTPOST_TELEGRAM_BASE_URL=http://127.0.0.1:9 OUTPOST_GRAPH_BASE_URL=http://127.0.0.1:9/v21.0
unset DATABASE_URL
"$bin" serve "${db[@]}" --listen 127.0.0.1:0 --gateway-listen 127.0.0.1:0 \
  --provisioner manual >"$work/stdout" 2>"$work/cp.log" &
cp_pid=$!
ui=""
for _ in $(seq 1 600); do
  ui=$(sed -n 's/^ *UI: *//p' "$work/stdout" | head -1)
  [ -n "$ui" ] && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/cp.log" >&2; echo "the control plane did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ui" ] || { cat "$work/cp.log" >&2; echo "the control plane did not start" >&2; exit 1; }
echo "control plane at $ui"

token=$("$bin" token create --email fuzz@example.test "${db[@]}")
# Something real to aim at: a workspace with an agent. The {id} and {agent} path
# parameters point at them.
ws_id=$(curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"Fuzz Bakery"}' "$ui/api/v1/workspaces" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace"]["id"])')
agent_id=$(curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"Ava","language":"en","fallback_message":"Sorry.","open":"09:00","close":"17:00","time_zone":"Europe/Paris","provider":"retrieval"}' \
  "$ui/api/v1/workspaces/$ws_id/agents" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# Cancelling a workspace is fuzzed on a second one, so the first stays open for the rest.
ws2_id=$(curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"Fuzz Dairy"}' "$ui/api/v1/workspaces" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace"]["id"])')

# Revoking a token is fuzzed in a run of its own with a second token: the fuzzer learns ids
# from `GET /api/v1/tokens` and would otherwise revoke the token the main run works with.
victim=$("$bin" token create --email fuzz@example.test --name victim "${db[@]}")

cat >"$work/schemathesis.toml" <<EOF
[parameters]
"path.id" = "$ws_id"
"path.agent" = "$agent_id"

[[operations]]
include-method = "DELETE"
include-path = "/api/v1/workspaces/{id}"
parameters = { "path.id" = "$ws2_id" }
EOF

mkdir -p "$report_dir"
seed=()
[ -n "${API_FUZZ_SEED:-}" ] && seed=(--seed "$API_FUZZ_SEED")
status=0
# From the scratch directory: schemathesis keeps a cache (.schemathesis/) where it runs.
fuzz() { # <token> <max-time> <filter args…>
  local auth=$1 secs=$2
  shift 2
  (cd "$work" && "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$ui/api/v1/openapi.json" \
    --url "$ui" \
    -H "Authorization: Bearer $auth" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" --max-time "$secs" \
    --rate-limit auto \
    --workers 1 \
    --generation-database none \
    --report junit,vcr --report-dir "$report_dir" \
    --no-color ${seed[@]+"${seed[@]}"} "$@")
}
fuzz "$token" "$max_time" --exclude-path '/api/v1/tokens/{token}' || status=$?
fuzz "$victim" 30 --include-path '/api/v1/tokens/{token}' || status=$?

if [ "$status" -ne 0 ]; then
  echo "--- control plane log (last 50 lines)"
  tail -50 "$work/cp.log"
  echo "api-fuzz: schemathesis found problems (report in $report_dir)" >&2
fi
exit "$status"
