# Shared functions of the local cluster scripts (sourced, not run).
# One place knows each path; every function says what it does by its name.
# shellcheck shell=bash

cluster_src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$cluster_src/../.." && pwd)
# Live state (certificates, etcd data, containerd, kubelet, logs, pids):
# per checkout, removed by `cluster.sh reset`.
cluster_dir=${ENVOY_POC_CLUSTER_DIR:-$repo_root/.local/cluster}
# Build products shared by every checkout on this machine (binaries, image
# archives): a fresh clone starts warm.
cluster_cache=${ENVOY_POC_CACHE:-$HOME/.cache/envoy-poc}/cluster
cluster_bin=$cluster_cache/bin
logs_dir=$cluster_dir/logs
pids_dir=$cluster_dir/pids
pki_dir=$cluster_dir/pki
volumes_dir=$cluster_dir/volumes
containerd_sock=$cluster_dir/run/containerd.sock

# ---- the cluster's shape ------------------------------------------------------
context_name=envoy-poc-local
node_name=envoy-poc-node
service_cidr=10.96.0.0/16
api_service_ip=10.96.0.1
dns_service_ip=10.96.0.10
pod_cidr=10.244.0.0/24
bridge_name=epoc0
# Addresses the host answers on as its own (an AnyIP route on lo), so tests
# can call the gateway's Service from many client addresses: Envoy Gateway's
# limits are per client IP, and loopback sources cannot leave the host.
client_cidr=10.245.0.0/16
# LoadBalancer addresses (lb-allocator hands them out, kube-proxy routes them).
# Local on the host too, so nothing sent there can leave the machine even
# when kube-proxy is not running.
lb_cidr=10.246.0.0/24
api_port=6443
# The kubelet keeps its cgroups here, in each v1 hierarchy (and nowhere else).
cgroup_root=envoy-poc

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

node_ip() { # the host's address on its default route: what pods reach the API server on
  local dev
  dev=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1); exit}')
  [ -n "$dev" ] || die "no default route: cannot pick the node address"
  ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}'
}

# ---- processes ----------------------------------------------------------------
# Each component runs in its own session (process group), its pid in
# pids/NAME.pid and its output in logs/NAME.log; stop_process ends that group
# and nothing else.

process_alive() { # name
  local pid_file=$pids_dir/$1.pid
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

start_process() { # name command [args...]
  local name=$1; shift
  if process_alive "$name"; then log "$name: already running (pid $(cat "$pids_dir/$name.pid"))"; return 0; fi
  mkdir -p "$logs_dir" "$pids_dir"
  setsid "$@" </dev/null >>"$logs_dir/$name.log" 2>&1 &
  echo $! >"$pids_dir/$name.pid"
  log "$name: started (pid $!, log ${logs_dir#"$repo_root"/}/$name.log)"
}

stop_process() { # name [grace seconds]
  local name=$1 grace=${2:-20} pid
  if process_alive "$name"; then
    pid=$(cat "$pids_dir/$name.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name: still running after ${grace}s, killing"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$name: stopped"
  fi
  rm -f "$pids_dir/$name.pid"
}

wait_until() { # description timeout-seconds command [args...]: poll until the command succeeds
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

# ---- kubectl as the cluster admin, whatever the user's current context --------
kubeconfig=$cluster_dir/kubeconfig/admin.conf
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
