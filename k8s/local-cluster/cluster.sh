#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, as host processes (the way
# kubernetes/kubernetes' hack/local-up-cluster.sh runs one): etcd, the API
# server, controller manager, scheduler, kubelet on containerd + runc, a CNI
# bridge, kube-proxy, CoreDNS and a LoadBalancer address allocator. No Docker, no registry: every binary is
# built from the Go module proxy or taken from Debian, every image built here
# (images.sh).
#
#   cluster.sh up        build what is missing, start what is not running,
#                        wait until the node and cluster DNS are Ready
#   cluster.sh down      stop exactly what `up` started and undo its host
#                        changes (pods, CNI bridge, iptables, cgroups, route);
#                        keeps the state (etcd data, certificates)
#   cluster.sh reset     down, then delete the state under .local/cluster
#   cluster.sh status    what runs
#   cluster.sh build     only build the binaries
#   cluster.sh images    (re)build the images and load them into the running
#                        cluster (`just images` without Docker)
#   cluster.sh env       print where tests reach the gateway (E2E_GATEWAY=...)
#   cluster.sh storage   (re)create the PersistentVolume PostgreSQL claims
#                        (`just deploy` runs it: the cluster has no provisioner)
#
# kubectl: context `envoy-poc-local` in your kubeconfig (like kind does), or
# KUBECONFIG=.local/cluster/kubeconfig/admin.conf. Needs root (containerd,
# network namespaces, cgroups) on Linux with cgroup v1 or v2.
set -o errexit -o nounset -o pipefail
# shellcheck source=k8s/local-cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Pins: the Debian bookworm packages in crates/xtask/pins.toml (group
# `cluster`), Kubernetes and etcd in components/go.mod.
cni_bin_dir=/usr/lib/cni

# ---- install and build -----------------------------------------------------------

install_packages() { # Debian's containerd, runc and CNI plugins, pinned
  local CONTAINERD_VERSION CONTAINERNETWORKING_PLUGINS_VERSION RUNC_VERSION CONNTRACK_VERSION
  eval "$(cd "$repo_root" && cargo xtask pins --shell | grep -E '^(CONTAINERD|CONTAINERNETWORKING_PLUGINS|RUNC|CONNTRACK)_VERSION=')"
  local want=("containerd=$CONTAINERD_VERSION" "containernetworking-plugins=$CONTAINERNETWORKING_PLUGINS_VERSION"
    "runc=$RUNC_VERSION" "conntrack=$CONNTRACK_VERSION") missing=() pkg
  for pkg in "${want[@]}"; do
    [ "$(dpkg-query -W -f='${Version}' "${pkg%%=*}" 2>/dev/null)" = "${pkg#*=}" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package may start its own containerd (/run/containerd); ours has its
  # own socket, so that one is harmless, but it is not ours to stop.
}

build_binaries() { # kube (all five components) and etcd from components/go.mod
  local src=$cluster_src/components stamp
  stamp=$(cd "$src" && cat go.mod go.sum ./*/*.go | sha256sum | cut -c1-16)
  if [ -x "$cluster_bin/kube" ] && [ -x "$cluster_bin/etcd" ] && [ "$(cat "$cluster_bin/.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building Kubernetes $(kubernetes_version) and etcd (first time: tens of minutes on 2 cores)"
  mkdir -p "$cluster_bin"
  local started=$SECONDS
  # The version stamps Kubernetes' own build sets (clients such as helm
  # compare against the server's version; v0.0.0-master breaks them).
  local v version_flags=""
  v=$(kubernetes_version)
  local minor=${v#v1.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    version_flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$version_flags" -o "$cluster_bin/" ./kube ./etcd)
  echo "$stamp" >"$cluster_bin/.stamp"
  log "built in $((SECONDS - started))s: $cluster_bin/{kube,etcd}"
}

kubernetes_version() { # from the require in components/go.mod, where the pin lives
  local v
  v=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$cluster_src/components/go.mod")
  [ -n "$v" ] || die "no k8s.io/kubernetes requirement in components/go.mod"
  echo "$v"
}

# ---- certificates and kubeconfigs ------------------------------------------------

issue_cert() { # name common-name organisation [subjectAltNames]
  local name=$1 cn=$2 org=$3 sans=${4:-}
  [ -f "$pki_dir/$name.crt" ] && return 0
  local ext="$pki_dir/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$sans"
    else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl genrsa -out "$pki_dir/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki_dir/$name.key" -subj "/O=$org/CN=$cn" -out "$pki_dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki_dir/$name.csr" -CA "$pki_dir/ca.crt" -CAkey "$pki_dir/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$pki_dir/$name.crt" 2>/dev/null
  rm -f "$pki_dir/$name.csr" "$ext"
}

write_kubeconfig() { # file user-cert-name
  local file=$1 cert=$2
  [ -f "$file" ] && return 0
  kubectl config set-cluster "$context_name" --kubeconfig "$file" --server "https://127.0.0.1:$api_port" \
    --certificate-authority "$pki_dir/ca.crt" --embed-certs >/dev/null
  # Named after the cluster: merged into the user's kubeconfig, a plain
  # "admin" could clash with (and on `down` remove) a user of their own.
  kubectl config set-credentials "$context_name-$cert" --kubeconfig "$file" --client-certificate "$pki_dir/$cert.crt" \
    --client-key "$pki_dir/$cert.key" --embed-certs >/dev/null
  kubectl config set-context "$context_name" --kubeconfig "$file" --cluster "$context_name" --user "$context_name-$cert" >/dev/null
  kubectl config use-context "$context_name" --kubeconfig "$file" >/dev/null
}

issue_pki() { # a CA, the API server's serving certificate, one client certificate per component
  mkdir -p "$pki_dir" "$(dirname "$kubeconfig")"
  chmod 700 "$pki_dir"
  if [ ! -f "$pki_dir/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki_dir/ca.key" -out "$pki_dir/ca.crt" \
      -days 3650 -subj "/CN=envoy-poc-local-ca" 2>/dev/null
    openssl genrsa -out "$pki_dir/service-account.key" 2048 2>/dev/null
    openssl rsa -in "$pki_dir/service-account.key" -pubout -out "$pki_dir/service-account.pub" 2>/dev/null
  fi
  issue_cert apiserver kube-apiserver kubernetes \
    "IP:127.0.0.1,IP:$api_service_ip,IP:$(node_ip),DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  issue_cert admin kubernetes-admin system:masters
  issue_cert controller-manager system:kube-controller-manager system:kube-controller-manager
  issue_cert scheduler system:kube-scheduler system:kube-scheduler
  issue_cert kube-proxy system:kube-proxy system:node-proxier
  issue_cert kubelet "system:node:$node_name" system:nodes
  write_kubeconfig "$kubeconfig" admin
  local component
  for component in controller-manager scheduler kube-proxy kubelet; do
    write_kubeconfig "$pki_dir/$component.conf" "$component"
  done
}

# ---- configuration -----------------------------------------------------------------

render() { # template output: replaces @NAME@ placeholders
  sed -e "s|@CLUSTER_DIR@|$cluster_dir|g" -e "s|@CONTAINERD_SOCK@|$containerd_sock|g" \
    -e "s|@PKI_DIR@|$pki_dir|g" -e "s|@CNI_BIN_DIR@|$cni_bin_dir|g" -e "s|@BRIDGE@|$bridge_name|g" \
    -e "s|@POD_CIDR@|$pod_cidr|g" -e "s|@DNS_SERVICE_IP@|$dns_service_ip|g" \
    -e "s|@NODE_NAME@|$node_name|g" -e "s|@CGROUP_ROOT@|$cgroup_root|g" \
    -e "s|@PAUSE_IMAGE@|$(image_ref pause)|g" -e "s|@COREDNS_IMAGE@|$(image_ref coredns)|g" \
    "$1" >"$2"
}

image_ref() { # short name -> the locally built image's reference
  local ref
  ref=$("$cluster_src/images.sh" list | awk -v n="/$1:" 'index($0, n) && !found {print; found = 1}')
  [ -n "$ref" ] || die "images.sh builds no '$1' image"
  echo "$ref"
}

render_configs() {
  mkdir -p "$cluster_dir/config" "$cluster_dir/cni/net.d" "$cluster_dir/run"
  render "$cluster_src/config/containerd.toml.in" "$cluster_dir/config/containerd.toml"
  render "$cluster_src/config/cni.conflist.in" "$cluster_dir/cni/net.d/10-envoy-poc.conflist"
  render "$cluster_src/config/kubelet.yaml.in" "$cluster_dir/config/kubelet.yaml"
  render "$cluster_src/config/kube-proxy.yaml.in" "$cluster_dir/config/kube-proxy.yaml"
  render "$cluster_src/manifests/coredns.yaml.in" "$cluster_dir/config/coredns.yaml"
}

# ---- host preparation (each undone by restore_host) ---------------------------

each_cgroup_v1_hierarchy() { # the mounted v1 hierarchies the kubelet uses
  local h
  for h in cpu cpuacct cpuset memory pids blkio devices freezer systemd; do
    [ -d "/sys/fs/cgroup/$h" ] && ! [ -f "/sys/fs/cgroup/$h/cgroup.controllers" ] && echo "/sys/fs/cgroup/$h"
  done
}

prepare_host() {
  [ "$(id -u)" = 0 ] || die "needs root (containerd, network namespaces, cgroups)"
  # Routing between the pod bridge and the host; bridged pod traffic through
  # iptables, which kube-proxy's Service rules need.
  [ -f "$cluster_dir/ip_forward.before" ] || cat /proc/sys/net/ipv4/ip_forward >"$cluster_dir/ip_forward.before"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  # The kubelet's cgroup root, in every v1 hierarchy (on a cgroup v2 host the
  # kubelet creates it itself).
  local h
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then :; else
    for h in $(each_cgroup_v1_hierarchy); do
      mkdir -p "$h/$cgroup_root"
      if [ "${h##*/}" = cpuset ]; then
        cat "$h/cpuset.cpus" >"$h/$cgroup_root/cpuset.cpus"
        cat "$h/cpuset.mems" >"$h/$cgroup_root/cpuset.mems"
      fi
    done
  fi
  local cidr
  for cidr in "$client_cidr" "$lb_cidr"; do
    ip route show table local | grep -q "^local $cidr " || ip route add local "$cidr" dev lo
  done
}

restore_host() {
  ip route del local "$client_cidr" dev lo 2>/dev/null || true
  ip route del local "$lb_cidr" dev lo 2>/dev/null || true
  ip link show "$bridge_name" >/dev/null 2>&1 && ip link delete "$bridge_name"
  # The bridge plugin's masquerade rules and chains of pods that went without
  # a CNI DEL (its rules carry the comment name: "envoy-poc" id: "...").
  local rule chain
  { iptables -t nat -S POSTROUTING 2>/dev/null | grep -F 'name: \"envoy-poc\"' || true; } | while read -r rule; do
    chain=$(sed -n 's/.* -j \(CNI-[0-9a-f]*\).*/\1/p' <<<"$rule")
    eval "iptables -t nat ${rule/-A /-D }" || true
    [ -n "$chain" ] && { iptables -t nat -F "$chain"; iptables -t nat -X "$chain"; } 2>/dev/null || true
  done
  # Our cgroup subtree, deepest first; the kernel refuses to remove a
  # non-empty cgroup, so this never touches a live process.
  local h
  for h in $(each_cgroup_v1_hierarchy) /sys/fs/cgroup; do
    [ -d "$h/$cgroup_root" ] && find "$h/$cgroup_root" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if [ -f "$cluster_dir/ip_forward.before" ]; then
    cat "$cluster_dir/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
    rm -f "$cluster_dir/ip_forward.before"
  fi
}

unmount_state() { # mounts the kubelet and containerd left under our state (tmpfs secrets, rootfs overlays)
  local m
  for m in $(awk -v d="$cluster_dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

# ---- components ------------------------------------------------------------------

start_containerd() {
  start_process containerd containerd --config "$cluster_dir/config/containerd.toml"
  wait_until "containerd" 30 ctr --address "$containerd_sock" version
}

start_etcd() {
  start_process etcd "$cluster_bin/etcd" --name "$node_name" --data-dir "$cluster_dir/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$node_name=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --log-level warn
  wait_until "etcd" 60 curl -sf http://127.0.0.1:2381/health
}

start_apiserver() {
  start_process kube-apiserver "$cluster_bin/kube" kube-apiserver \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port "$api_port" --advertise-address "$(node_ip)" \
    --tls-cert-file "$pki_dir/apiserver.crt" --tls-private-key-file "$pki_dir/apiserver.key" \
    --client-ca-file "$pki_dir/ca.crt" \
    --kubelet-client-certificate "$pki_dir/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki_dir/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki_dir/service-account.pub" \
    --service-account-signing-key-file "$pki_dir/service-account.key" \
    --service-cluster-ip-range "$service_cidr" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --v=1
  wait_until "kube-apiserver /readyz" 120 kc get --raw /readyz
}

start_controllers() {
  start_process kube-controller-manager "$cluster_bin/kube" kube-controller-manager \
    --kubeconfig "$pki_dir/controller-manager.conf" \
    --authentication-kubeconfig "$pki_dir/controller-manager.conf" \
    --authorization-kubeconfig "$pki_dir/controller-manager.conf" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$pki_dir/service-account.key" --root-ca-file "$pki_dir/ca.crt" \
    --cluster-signing-cert-file "$pki_dir/ca.crt" --cluster-signing-key-file "$pki_dir/ca.key" \
    --service-cluster-ip-range "$service_cidr" --profiling=false --v=1
  start_process kube-scheduler "$cluster_bin/kube" kube-scheduler \
    --kubeconfig "$pki_dir/scheduler.conf" \
    --authentication-kubeconfig "$pki_dir/scheduler.conf" \
    --authorization-kubeconfig "$pki_dir/scheduler.conf" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
}

start_kubelet() {
  start_process kubelet "$cluster_bin/kube" kubelet \
    --config "$cluster_dir/config/kubelet.yaml" --kubeconfig "$pki_dir/kubelet.conf" \
    --root-dir "$cluster_dir/kubelet" --cert-dir "$cluster_dir/kubelet/pki" \
    --hostname-override "$node_name" --node-ip "$(node_ip)" --v=1
  wait_until "node $node_name Ready" 180 kc wait --for=condition=Ready "node/$node_name" --timeout=2s
}

start_kube_proxy() {
  start_process kube-proxy "$cluster_bin/kube" kube-proxy --config "$cluster_dir/config/kube-proxy.yaml" --v=1
  wait_until "kube-proxy" 60 curl -sf http://127.0.0.1:10256/healthz
  start_process lb-allocator "$cluster_bin/kube" lb-allocator --kubeconfig "$kubeconfig" --pool "$lb_cidr"
}

start_dns() {
  kc apply --server-side --force-conflicts -f "$cluster_dir/config/coredns.yaml" >/dev/null
  kc -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null \
    || die "CoreDNS did not become ready (kubectl -n kube-system describe pods)"
}

merge_user_kubeconfig() { # context envoy-poc-local in the user's kubeconfig, as kind does
  local merged
  merged=$(mktemp)
  KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}:$kubeconfig" kubectl config view --flatten >"$merged"
  mkdir -p "$HOME/.kube"
  local previous
  previous=$(kubectl config current-context 2>/dev/null || true)
  [ -z "$previous" ] || [ "$previous" = "$context_name" ] || echo "$previous" >"$cluster_dir/previous-context"
  mv "$merged" "${KUBECONFIG:-$HOME/.kube/config}"
  chmod 600 "${KUBECONFIG:-$HOME/.kube/config}"
  kubectl config use-context "$context_name" >/dev/null
}

forget_user_kubeconfig() {
  kubectl config get-contexts "$context_name" >/dev/null 2>&1 || return 0
  kubectl config delete-context "$context_name" >/dev/null
  kubectl config delete-cluster "$context_name" >/dev/null 2>&1 || true
  kubectl config unset "users.$context_name-admin" >/dev/null 2>&1 || true
  if [ -f "$cluster_dir/previous-context" ]; then
    kubectl config use-context "$(cat "$cluster_dir/previous-context")" >/dev/null 2>&1 || true
    rm -f "$cluster_dir/previous-context"
  fi
}

# ---- commands ------------------------------------------------------------------------

cmd_up() {
  local started=$SECONDS
  mkdir -p "$cluster_dir"
  install_packages
  build_binaries
  "$cluster_src/images.sh" build
  issue_pki
  render_configs
  prepare_host
  start_containerd
  "$cluster_src/images.sh" import "$containerd_sock"
  start_etcd
  start_apiserver
  start_controllers
  start_kubelet
  start_kube_proxy
  start_dns
  merge_user_kubeconfig
  log "cluster up in $((SECONDS - started))s: kubectl --context $context_name get pods -A"
}

cmd_down() {
  # Pods first, through the runtime, while it still runs: that releases their
  # network (veth, IP, iptables) and mounts. Then the components in reverse.
  stop_process lb-allocator
  stop_process kube-proxy
  stop_process kubelet
  if process_alive containerd; then
    "$cluster_bin/kube" cri-reset "unix://$containerd_sock" >/dev/null || log "some pod sandboxes would not go (continuing)"
  fi
  stop_process kube-scheduler
  stop_process kube-controller-manager
  stop_process kube-apiserver
  stop_process etcd
  stop_process containerd
  # containerd's shims outlive it by design; stop those of our containerd.
  pkill -TERM -f "containerd-shim-runc-v2 .*-address $containerd_sock" 2>/dev/null || true
  [ -x "$cluster_bin/kube" ] && "$cluster_bin/kube" kube-proxy --cleanup >/dev/null 2>&1 || true
  unmount_state
  restore_host
  forget_user_kubeconfig
  log "cluster down"
}

cmd_status() {
  local name
  for name in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy lb-allocator; do
    if process_alive "$name"; then printf '%-24s running (pid %s)\n' "$name" "$(cat "$pids_dir/$name.pid")"
    else printf '%-24s stopped\n' "$name"; fi
  done
  process_alive kube-apiserver && kc get nodes -o wide && kc get pods -A -o wide
}

# The cluster has no volume provisioner: one static hostPath volume under the
# state, pre-bound to PostgreSQL's claim (manifests/volumes.yaml.in). Once its
# claim is gone (`just undeploy` deletes the namespace) the volume is Released
# and no new claim could bind to it: it is then deleted with its data, as
# Docker Desktop's and kind's provisioners delete theirs, and made anew.
cmd_storage() {
  local pv=envoy-poc-postgres-data dir=$volumes_dir/postgres-data phase
  phase=$(kc get pv "$pv" -o 'jsonpath={.status.phase}' 2>/dev/null || true)
  if [ "$phase" = Released ] || [ "$phase" = Failed ]; then
    log "volume $pv: its claim is gone, deleting it and its data"
    kc delete pv "$pv" --wait=true >/dev/null
    rm -rf "$dir"
  fi
  # The image's postgres user (999, official image and ours alike) must own
  # it: Kubernetes applies fsGroup to no hostPath volume.
  install -d -m 0700 -o 999 -g 999 "$dir"
  sed -e "s|@VOLUME_DIR@|$dir|g" "$cluster_src/manifests/volumes.yaml.in" >"$cluster_dir/config/volumes.yaml"
  kc apply --server-side -f "$cluster_dir/config/volumes.yaml" >/dev/null
  log "volume $pv: $dir ($(kc get pv "$pv" -o 'jsonpath={.status.phase}'))"
}

cmd_env() { # where tests reach the gateway: the Envoy Service's ClusterIP, from many client addresses
  local ip port
  # The Envoy Service's labels name the Gateway (from the service table).
  ip=$(kc -n envoy-gateway-system get service \
    -l "$(cd "$repo_root" && cargo run -q --locked -p envoy-ext -- print envoy-selector)" \
    -o jsonpath='{.items[0].spec.clusterIP}')
  port=$(kc -n envoy-poc get gateway eg -o jsonpath='{.spec.listeners[0].port}')
  [ -n "$ip" ] && [ -n "$port" ] || die "no gateway deployed (just deploy)"
  echo "E2E_GATEWAY=http://$ip:$port"
  echo "E2E_CLIENT_CIDR=$client_cidr"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_down; rm -rf "$cluster_dir"; log "state removed" ;;
  status) cmd_status ;;
  build) install_packages; build_binaries ;;
  images)
    "$cluster_src/images.sh" build
    process_alive containerd && "$cluster_src/images.sh" import "$containerd_sock" ;;
  env) cmd_env ;;
  storage) mkdir -p "$cluster_dir/config"; cmd_storage ;;
  *) sed -n '2,/^set -o/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
