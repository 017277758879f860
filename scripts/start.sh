#!/usr/bin/env bash
# Starts the whole platform locally: a redis-server (data and AOF under
# var/redis), the ledger, kudos, leaderboard, integrations and programs
# services and the HTTP gateway, seeds a demo org, and prints where to point a client and a browser.
# Ctrl-C stops everything.
#   bash scripts/start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
VAR=$ROOT/var
REDIS_PORT=${REDIS_PORT:-6390}
LEDGER_ADDR=${LEDGER_ADDR:-127.0.0.1:50051}
KUDOS_ADDR=${KUDOS_ADDR:-127.0.0.1:50052}
LEADERBOARD_ADDR=${LEADERBOARD_ADDR:-127.0.0.1:50053}
INTEGRATIONS_ADDR=${INTEGRATIONS_ADDR:-127.0.0.1:50054}
PROGRAMS_ADDR=${PROGRAMS_ADDR:-127.0.0.1:50055}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
export KUDOS_ORG=${KUDOS_ORG:-demo}
# Local development: unset JWT_KEY / SERVICE_TOKEN_SECRET fall back to the
# PUBLIC development secrets (services refuse to start without explicit keys
# otherwise). Export real secrets and KUDOS_DEV_INSECURE_DEFAULTS=0 to try a
# production-like start.
export KUDOS_DEV_INSECURE_DEFAULTS=${KUDOS_DEV_INSECURE_DEFAULTS:-1}
export LEDGER_ADDR KUDOS_ADDR LEADERBOARD_ADDR INTEGRATIONS_ADDR PROGRAMS_ADDR

bash scripts/install-deps.sh
# Build type Test and -Werror, as `scripts/test.sh --plain`: the two share build/ without rebuilding it.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Test -DKUDOS_WERROR=ON -DKUDOS_SERVICES="ledger;kudos;leaderboard;gateway" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target ledger_server kudos_server leaderboard_server gateway_server integrations_server \
  programs_server kudosctl

mkdir -p "$VAR/redis" "$VAR/log"
pids=()
stop() {
  echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

wait_port() {  # host:port
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1; see $VAR/log" >&2
  exit 1
}

redis-server "$ROOT/scripts/redis-platform.conf" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$VAR/redis" --appendonly yes \
  --appendfsync everysec --save "" --daemonize no --logfile "$VAR/log/redis.log" &
pids+=($!)
wait_port "127.0.0.1:$REDIS_PORT"
export REDIS_ADDR=127.0.0.1:$REDIS_PORT

"$BUILD_DIR/services/ledger/ledger_server" --listen="$LEDGER_ADDR" >"$VAR/log/ledger.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/kudos/kudos_server" --listen="$KUDOS_ADDR" >"$VAR/log/kudos.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/services/leaderboard/leaderboard_server" --listen="$LEADERBOARD_ADDR" >"$VAR/log/leaderboard.log" 2>&1 &
pids+=($!)
wait_port "$LEDGER_ADDR"; wait_port "$KUDOS_ADDR"; wait_port "$LEADERBOARD_ADDR"
# Webhooks, the Slack-compatible app, directory sync and exports (issue 17).
"$BUILD_DIR/services/integrations/integrations_server" --listen="$INTEGRATIONS_ADDR" >"$VAR/log/integrations.log" 2>&1 &
pids+=($!)
wait_port "$INTEGRATIONS_ADDR"
# Budgets, awards and automatic celebrations (issue 18): calls kudos and ledger.
"$BUILD_DIR/services/programs/programs_server" --listen="$PROGRAMS_ADDR" >"$VAR/log/programs.log" 2>&1 &
pids+=($!)
wait_port "$PROGRAMS_ADDR"
"$BUILD_DIR/services/gateway/gateway_server" --http="$HTTP_ADDR" >"$VAR/log/gateway.log" 2>&1 &
pids+=($!)
wait_port "$HTTP_ADDR"

CTL="$BUILD_DIR/tools/kudosctl"
"$CTL" seed --as=admin
SCREEN_TOKEN=$("$CTL" token --as=lobby-screen --roles=screen)
ADMIN_TOKEN=$("$CTL" token --as=admin --roles=admin)

cat <<INFO

Kudos platform is up (org '$KUDOS_ORG'; logs in var/log, Redis data in var/redis):
  redis-server        127.0.0.1:$REDIS_PORT
  ledger   (gRPC)     $LEDGER_ADDR
  kudos    (gRPC)     $KUDOS_ADDR
  leaderboard (gRPC)  $LEADERBOARD_ADDR
  integrations (gRPC) $INTEGRATIONS_ADDR   (webhooks, Slack, SCIM, export: services/integrations/README.md)
  programs (gRPC)     $PROGRAMS_ADDR   (budgets, awards, celebrations: services/programs/README.md)
  gateway  (HTTP)     http://$HTTP_ADDR/

Try it from another shell (development mode: kudosctl mints with the public secret):
  export KUDOS_DEV_INSECURE_DEFAULTS=1
  $CTL send --as=alice --to=bob,carol --points=5 --values=teamwork --message="Thanks for the demo!"
  $CTL leaderboard --window=week
  $CTL feed
  curl -H "Authorization: Bearer \$($CTL token --as=alice)" http://$HTTP_ADDR/v1/kudos

Team screen (open in a browser):
  http://$HTTP_ADDR/screen?token=$SCREEN_TOKEN&team=support

Admin token for the HTTP API:
  $ADMIN_TOKEN

Press Ctrl-C to stop.
INFO
wait -n "${pids[@]}" || true
echo "a process exited; see $VAR/log" >&2
