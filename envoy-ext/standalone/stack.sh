#!/usr/bin/env bash
# The local stack without a cluster: both services plus Envoy Gateway in
# standalone mode (File provider, Host infrastructure) running a real Envoy.
#
#   stack.sh up       start what is not running (and restart a service whose
#                     binary was rebuilt), wait until the gateway answers
#   stack.sh down     stop exactly what `up` started
#   stack.sh status   show what runs
#   stack.sh running  exit 0 when everything runs and the gateway answers
#   stack.sh restart NAME  stop one service instance (SIGTERM, drain) and
#                     start it again, e.g. customer-service-2
#
# REPLICAS=2 also runs a second instance of each service (customer-service-2
# on :50061, product-service-2 on :50062), the endpoints that
# OVERLAY=k8s/overlays/ha adds; the fault tests use it (`just test-faults`).
# AUTH=1 (`just up-auth`, `just test-auth`) also runs Keycloak on
# 127.0.0.1:8180 (dev mode, in-memory database, realms imported from
# k8s/keycloak/) and defaults OVERLAY to k8s/overlays/local-auth; it needs
# KEYCLOAK_HOME and JAVA_HOME (the justfile sets both). `down` stops Keycloak
# whether AUTH is set or not.
# Everything lives under $STATE_DIR (default .local/stack): logs in logs/,
# pid files in pids/. Tools come from `just tools` (on PATH via just).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state_dir=${STATE_DIR:-$repo_root/.local/stack}
auth=${AUTH:-}
if [ "$auth" = 0 ]; then auth=; fi
overlay=${OVERLAY:-$repo_root/k8s/overlays/local${auth:+-auth}}
keycloak_port=8180
envoy_version=${ENVOY_VERSION:?ENVOY_VERSION is set by the justfile}
gateway_port=8080
replicas=${REPLICAS:-1}
logs=$state_dir/logs
pids=$state_dir/pids

log() { printf '%s\n' "$*" >&2; }

alive() { # name
  local pid_file=$pids/$1.pid
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

stop() { # name
  local name=$1
  if alive "$name"; then
    # Negative pid: the whole process group started by `start`.
    kill -TERM -- "-$(cat "$pids/$name.pid")" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while alive "$name" && ((SECONDS < deadline)); do sleep 0.1; done
    alive "$name" && kill -KILL -- "-$(cat "$pids/$name.pid")" 2>/dev/null || true
    log "$name: stopped"
  fi
  rm -f "$pids/$name.pid"
}

close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

start() { # name command...
  local name=$1
  shift
  if alive "$name" && [ "$1" -nt "$pids/$name.pid" ]; then
    log "$name: binary rebuilt, restarting"
    stop "$name"
  fi
  if alive "$name"; then
    log "$name: already running (pid $(cat "$pids/$name.pid"))"
    return
  fi
  # setsid: its own process group, so `down` also stops what it spawned
  # (Envoy Gateway's Envoy child). The service must not inherit our open
  # files: a caller's lock (`flock`) would otherwise live as long as it does.
  (
    close_inherited_fds
    exec setsid "$@" >"$logs/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$pids/$name.pid"
  log "$name: started (pid $!), log $logs/$name.log"
}

wait_for() { # description timeout-seconds command...
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what; see $logs/"
      return 1
    fi
    sleep 0.1
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

gateway_answers() {
  # With AUTH a call without a token must be refused: 401 is the gateway up
  # with the auth layer loaded.
  local want=200
  if [ -n "$auth" ]; then want=401; fi
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gateway_port/customers?page_size=1")" = "$want" ]
}

keycloak_answers() {
  curl -sf -o /dev/null "http://127.0.0.1:$keycloak_port/realms/envoy-poc/protocol/openid-connect/certs"
}

start_keycloak() {
  local home=${KEYCLOAK_HOME:?KEYCLOAK_HOME is set by the justfile}
  if alive keycloak; then
    log "keycloak: already running (pid $(cat "$pids/keycloak.pid"))"
    return
  fi
  # start-dev --import-realm reads <home>/data/import; with the in-memory
  # database every start is a fresh import of the realm files in the repo.
  mkdir -p "$home/data/import"
  rm -f "$home/data/import/"*.json
  cp "$repo_root"/k8s/keycloak/realm-*.json "$home/data/import/"
  # The fixed hostname pins the tokens' issuer whatever address a client
  # uses. The bootstrap admin (admin/admin) is for the local console only.
  KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin \
    start keycloak "$home/bin/kc.sh" start-dev --http-host 127.0.0.1 --http-port "$keycloak_port" \
    --hostname "http://127.0.0.1:$keycloak_port" --db dev-mem --import-realm
}

render_gateway_config() {
  mkdir -p "$state_dir/resources" "$state_dir/data/envoy-versions/$envoy_version/bin"
  # Pre-seed the Envoy that the Host infrastructure would otherwise download.
  ln -sf "$(command -v envoy)" "$state_dir/data/envoy-versions/$envoy_version/bin/envoy"
  sed -e "s|@RESOURCES_DIR@|$state_dir/resources|" -e "s|@STATE_DIR@|$state_dir|g" \
    "$repo_root/envoy-ext/standalone/envoy-gateway.yaml.in" >"$state_dir/envoy-gateway.yaml"
  # Written atomically: the File provider watches this directory.
  kubectl kustomize "$overlay" | sed "s|@ENVOY_VERSION@|$envoy_version|g" >"$state_dir/gateway.yaml.tmp"
  mv "$state_dir/gateway.yaml.tmp" "$state_dir/resources/gateway.yaml"
  if [ ! -f "$state_dir/config/certs/envoy/tls.crt" ]; then
    envoy-gateway certgen --local --config-home "$state_dir/config" >"$logs/certgen.log" 2>&1
  fi
}

# A port we need that is open while our own process is not running belongs to
# someone else (another stack, another state dir, a stray service): say so
# instead of half-starting next to it.
check_ports_free() {
  local name port
  for name_port in $(instances | awk '{print $1 ":" $3}') envoy-gateway:$gateway_port ${auth:+keycloak:$keycloak_port}; do
    name=${name_port%%:*} port=${name_port##*:}
    if ! alive "$name" && port_open "$port"; then
      log "port $port is in use by another process (another stack, or a service started by hand?)."
      log "stop it first (e.g. \`just down\`, or STATE_DIR=<its dir> $0 down) and try again."
      return 1
    fi
  done
}

# The service instances `up` runs, as "name binary port".
instances() {
  echo "customer-service customer-service 50051"
  echo "product-service product-service 50052"
  if ((replicas >= 2)); then
    echo "customer-service-2 customer-service 50061"
    echo "product-service-2 product-service 50062"
  fi
}

start_instance() { # name binary port
  local bin_dir=${BIN_DIR:-$repo_root/target/debug}
  start "$1" "$bin_dir/$2" --reflect-whole-api --port "$3"
}

up() {
  mkdir -p "$logs" "$pids"
  check_ports_free
  local name bin port
  while read -r name bin port; do start_instance "$name" "$bin" "$port"; done < <(instances)
  if [ -n "$auth" ]; then start_keycloak; fi
  render_gateway_config
  start envoy-gateway envoy-gateway server --config-path "$state_dir/envoy-gateway.yaml"
  while read -r name bin port; do wait_for "$name on :$port" 30 port_open "$port"; done < <(instances)
  if [ -n "$auth" ]; then
    wait_for "keycloak on :$keycloak_port (realm envoy-poc)" 300 keycloak_answers
    log "keycloak ready on http://127.0.0.1:$keycloak_port (realm envoy-poc)"
  fi
  wait_for "the gateway on :$gateway_port" 120 gateway_answers
  log "gateway ready on http://localhost:$gateway_port"
}

down() {
  local name
  # The second instances too, whatever REPLICAS says now (stop is a no-op
  # for what does not run).
  for name in envoy-gateway keycloak product-service-2 customer-service-2 product-service customer-service; do
    stop "$name"
  done
}

running() {
  local name _
  while read -r name _; do alive "$name" || return 1; done < <(instances)
  if [ -n "$auth" ]; then alive keycloak && keycloak_answers || return 1; fi
  alive envoy-gateway && gateway_answers
}

restart() { # name
  local name bin port
  while read -r name bin port; do
    [ "$name" = "$1" ] || continue
    mkdir -p "$logs" "$pids"
    stop "$name"
    start_instance "$name" "$bin" "$port"
    wait_for "$name on :$port" 30 port_open "$port"
    return
  done < <(instances)
  log "restart: no service instance $1 (with REPLICAS=$replicas)"
  return 2
}

status() {
  local name
  for name in $(instances | cut -d' ' -f1) envoy-gateway; do
    if alive "$name"; then echo "$name: running (pid $(cat "$pids/$name.pid"))"; else echo "$name: stopped"; fi
  done
  if [ -n "$auth" ] || alive keycloak; then
    if alive keycloak; then echo "keycloak: running (pid $(cat "$pids/keycloak.pid"))"; else echo "keycloak: stopped"; fi
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  running) running ;;
  restart) restart "${2:?usage: $0 restart NAME}" ;;
  *)
    log "usage: $0 up|down|status|running|restart NAME"
    exit 2
    ;;
esac
