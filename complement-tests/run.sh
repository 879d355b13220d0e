#!/usr/bin/env bash
# Run the Roost black-box conformance suite.
#
# Usage: complement-tests/run.sh [--server roost|synapse|url] [pytest args...]
#
#   --server roost    (default) start two Roost servers from "$ROOST_BIN"
#   --server synapse  pip-install matrix-synapse into a venv and start two Synapses
#   --server url      start nothing; use ROOST_CT_OPEN_URL / ROOST_CT_TOKEN_URL /
#                     ROOST_CT_SHARED_SECRET from the environment
#
# Two servers are started, each on a free 127.0.0.1 port with its own temp dir:
#   "open":  open registration (m.login.dummy) + registration shared secret
#   "token": registration requires m.login.registration_token + same shared secret
#
# Environment:
#   ROOST_BIN                  Roost binary (required for --server roost)
#   ROOST_CT_VENV              test venv   (default ~/.cache/roost/ct-venv)
#   ROOST_SYNAPSE_VENV         Synapse venv (default ~/.cache/roost/synapse-venv)
#   ROOST_CT_STARTUP_TIMEOUT   seconds to wait for each server (default 90)
#   ROOST_CT_KEEP_TMP=1        keep the temp dir (configs, logs, databases)
set -euo pipefail

CT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVER=roost
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server) [ $# -ge 2 ] || { echo "--server needs a value" >&2; exit 2; }; SERVER=$2; shift 2 ;;
    --server=*) SERVER=${1#--server=}; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) PYTEST_ARGS+=("$1"); shift ;;
  esac
done
case "$SERVER" in roost|synapse|url) ;; *) echo "--server must be roost, synapse or url" >&2; exit 2 ;; esac

log() { echo "[run.sh] $*" >&2; }

PYTHON=${PYTHON:-python3}
CT_VENV=${ROOST_CT_VENV:-$HOME/.cache/roost/ct-venv}
SYNAPSE_VENV=${ROOST_SYNAPSE_VENV:-$HOME/.cache/roost/synapse-venv}
STARTUP_TIMEOUT=${ROOST_CT_STARTUP_TIMEOUT:-90}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---- test venv --------------------------------------------------------------
ensure_ct_venv() {
  local stamp="$CT_VENV/.ct-requirements.sha256" want
  want=$(hash_of "$CT_DIR/requirements.txt")
  if [ ! -x "$CT_VENV/bin/python" ]; then
    log "creating test venv $CT_VENV"
    mkdir -p "$(dirname "$CT_VENV")"
    "$PYTHON" -m venv "$CT_VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing test requirements into $CT_VENV"
    "$CT_VENV/bin/pip" install -q -r "$CT_DIR/requirements.txt"
    echo "$want" >"$stamp"
  fi
}

ensure_synapse_venv() {
  local stamp="$SYNAPSE_VENV/.ct-synapse-installed"
  if [ ! -x "$SYNAPSE_VENV/bin/python" ]; then
    log "creating Synapse venv $SYNAPSE_VENV"
    mkdir -p "$(dirname "$SYNAPSE_VENV")"
    "$PYTHON" -m venv "$SYNAPSE_VENV"
  fi
  if [ ! -f "$stamp" ] || ! "$SYNAPSE_VENV/bin/python" -c 'import synapse.app.homeserver' >/dev/null 2>&1; then
    log "installing matrix-synapse into $SYNAPSE_VENV (takes a few minutes the first time)"
    "$SYNAPSE_VENV/bin/pip" install -q matrix-synapse
    touch "$stamp"
  fi
}

ensure_ct_venv
CT_PY="$CT_VENV/bin/python"

free_port() {
  "$CT_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- server lifecycle ---------------------------------------------------------
TMP=""
PIDS=()
LOGS=()
RC=1

cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    # Wait (bounded) for it to exit; escalate if it does not.
    if ! "$CT_PY" - "$pid" <<'EOF'
import os, sys, time
pid = int(sys.argv[1]); deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
EOF
    then
      kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "$RC" != 0 ] && [ "${#LOGS[@]}" -gt 0 ]; then
      local f
      for f in "${LOGS[@]}"; do
        [ -f "$f" ] || continue
        echo "----- tail of $f -----" >&2
        tail -n 40 "$f" >&2 || true
      done
    fi
    if [ "${ROOST_CT_KEEP_TMP:-0}" = 1 ]; then
      log "kept temp dir $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_up NAME URL PID LOGFILE: poll /versions until it answers or the deadline passes
wait_up() {
  local name=$1 url=$2 pid=$3 logfile=$4
  if ! "$CT_PY" - "$url" "$pid" "$STARTUP_TIMEOUT" <<'EOF'
import os, sys, time
import requests
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        print(f"server process {pid} exited", file=sys.stderr)
        sys.exit(1)
    try:
        r = requests.get(url + "/_matrix/client/versions", timeout=2)
        if r.status_code == 200 and "versions" in r.json():
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
print(f"no answer from {url} within {timeout}s", file=sys.stderr)
sys.exit(1)
EOF
  then
    log "$name server did not come up; log: $logfile"
    tail -n 60 "$logfile" >&2 || true
    exit 1
  fi
  log "$name server up at $url"
}

SHARED_SECRET=""

start_roost() { # NAME MODE
  local name=$1 mode=$2 port dir
  port=$(free_port)
  dir="$TMP/$name"
  mkdir -p "$dir/db"
  log "starting Roost ($name, registration=$mode) on 127.0.0.1:$port"
  # Roost refuses unknown ROOST_* variables, so the runner's own (ROOST_BIN, ROOST_CT_*)
  # must not reach it: start it with only the configuration variables set here.
  local -a strip=()
  local var
  for var in $(compgen -e); do
    case "$var" in ROOST_*) strip+=(-u "$var") ;; esac
  done
  env "${strip[@]}" \
  ROOST_SERVER_NAME=localhost \
  ROOST_DATABASE__PATH="$dir/db" \
  ROOST_LISTENERS__CLIENT="127.0.0.1:$port" \
  ROOST_REGISTRATION__MODE="$mode" \
  ROOST_REGISTRATION__SHARED_SECRET="$SHARED_SECRET" \
  ROOST_LOG__LEVEL=warn \
    "$ROOST_BIN" serve >"$dir/roost.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid"); LOGS+=("$dir/roost.log")
  STARTED_URL="http://127.0.0.1:$port"; STARTED_PID=$pid; STARTED_LOG="$dir/roost.log"
}

start_synapse() { # NAME MODE
  local name=$1 mode=$2 port dir py
  py="$SYNAPSE_VENV/bin/python"
  port=$(free_port)
  dir="$TMP/$name"
  mkdir -p "$dir"
  log "generating Synapse config ($name) in $dir"
  (cd "$dir" && "$py" -m synapse.app.homeserver --server-name localhost \
      --config-path "$dir/homeserver.yaml" --generate-config --report-stats=no \
      --data-directory "$dir" >/dev/null)
  local big='{per_second: 1000000, burst_count: 1000000}'
  local token_yaml=""
  [ "$mode" = token ] && token_yaml="registration_requires_token: true"
  cat >"$dir/overrides.yaml" <<EOF
# Written by complement-tests/run.sh. Top-level keys override homeserver.yaml.
listeners:
  - port: $port
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: $dir/homeserver.db
enable_registration: true
enable_registration_without_verification: true
$token_yaml
registration_shared_secret: "$SHARED_SECRET"
# Guest registration is optional in the spec; enabled so those tests run.
allow_guest_access: true
report_stats: false
# Cheap password hashing: the suite registers hundreds of users.
bcrypt_rounds: 4
# Let every user publish rooms in the directory (Synapse's default lets only
# admins do so; the spec leaves this to the server).
room_list_publication_rules:
  - action: allow
# The spec has no auth on GET /publicRooms; Synapse needs this to agree.
allow_public_rooms_without_auth: true
trusted_key_servers: []
suppress_key_server_warning: true
# POST /_matrix/client/v1/login/get_token (m.login.token via an existing session)
login_via_existing_session:
  enabled: true
  require_ui_auth: true
  token_timeout: 5m
rc_message: $big
rc_registration: $big
rc_registration_token_validity: $big
rc_login:
  address: $big
  account: $big
  failed_attempts: $big
rc_joins:
  local: $big
  remote: $big
rc_joins_per_room: $big
rc_invites:
  per_room: $big
  per_user: $big
  per_issuer: $big
rc_3pid_validation: $big
rc_admin_redaction: $big
rc_key_requests: $big
rc_third_party_invite: $big
rc_media_create: $big
rc_presence:
  per_user: $big
rc_delayed_event_mgmt: $big
rc_room_creation: $big
rc_reports: $big
rc_user_directory: $big
rc_profile: $big
rc_federation:
  window_size: 1000
  sleep_limit: 1000000
  sleep_delay: 0
  reject_limit: 1000000
  concurrent: 1000000
EOF
  log "starting Synapse ($name, registration=$mode) on 127.0.0.1:$port"
  (cd "$dir" && exec "$py" -m synapse.app.homeserver -c "$dir/homeserver.yaml" -c "$dir/overrides.yaml") \
    >"$dir/stdout.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid"); LOGS+=("$dir/stdout.log" "$dir/homeserver.log")
  STARTED_URL="http://127.0.0.1:$port"; STARTED_PID=$pid; STARTED_LOG="$dir/stdout.log"
}

if [ "$SERVER" = url ]; then
  : "${ROOST_CT_OPEN_URL:?--server url needs ROOST_CT_OPEN_URL}"
  : "${ROOST_CT_TOKEN_URL:?--server url needs ROOST_CT_TOKEN_URL}"
  : "${ROOST_CT_SHARED_SECRET:?--server url needs ROOST_CT_SHARED_SECRET}"
else
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/roost-ct.XXXXXX")
  SHARED_SECRET=$("$CT_PY" -c 'import secrets; print(secrets.token_hex(24))')
  if [ "$SERVER" = roost ]; then
    : "${ROOST_BIN:?--server roost needs ROOST_BIN (path to the roost binary)}"
    [ -x "$ROOST_BIN" ] || { echo "ROOST_BIN=$ROOST_BIN is not executable" >&2; exit 1; }
    unset ROOST_CONFIG
    starter=start_roost
  else
    ensure_synapse_venv
    starter=start_synapse
  fi
  $starter open open;   OPEN_URL=$STARTED_URL;  OPEN_PID=$STARTED_PID;  OPEN_LOG=$STARTED_LOG
  $starter token token; TOKEN_URL=$STARTED_URL; TOKEN_PID=$STARTED_PID; TOKEN_LOG=$STARTED_LOG
  wait_up open "$OPEN_URL" "$OPEN_PID" "$OPEN_LOG"
  wait_up token "$TOKEN_URL" "$TOKEN_PID" "$TOKEN_LOG"
  export ROOST_CT_OPEN_URL=$OPEN_URL
  export ROOST_CT_TOKEN_URL=$TOKEN_URL
  export ROOST_CT_SHARED_SECRET=$SHARED_SECRET
fi
# Run everything under tests/ unless the caller named test paths/node ids.
HAS_PATH=0
for a in "${PYTEST_ARGS[@]:-}"; do
  case "$a" in -*|"") continue ;; esac
  if [ -e "${a%%::*}" ]; then HAS_PATH=1; fi
done
TARGET=()
[ "$HAS_PATH" = 1 ] || TARGET=("$CT_DIR/tests")

set +e
"$CT_PY" -m pytest -c "$CT_DIR/pytest.ini" --rootdir "$CT_DIR" "${TARGET[@]}" "${PYTEST_ARGS[@]}"
RC=$?
set -e
exit "$RC"
