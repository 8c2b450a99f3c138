# gRPC-first Rust services behind Envoy Gateway. `just --list` is the table of contents; the logic
# is tested Rust in `cargo xtask` (crates/xtask) and `cargo stack` (crates/stack): docs/development.md.
set shell := ["bash", "-euo", "pipefail", "-c"]

# The pinned tools (crates/xtask/pins.toml) live outside the clone, shared by every checkout.
tools_dir := env("ENVOY_POC_TOOLS", env("HOME") / ".cache/envoy-poc/tools")
tools_bin := tools_dir / "bin"
export PATH := tools_bin + ":" + env("PATH")
envoy_gateway_version := `cargo xtask pin envoy-gateway`  # the Kubernetes recipes; unused once they are xtask

# Show the recipes
default:
    @just --list --unsorted

# ---- quick start ----

# Bring the local stack up: both services + Envoy Gateway (standalone) on :8080; `just up scale`: two instances each on PostgreSQL, global rate limits
up profile="dev": _build-services
    cargo xtask stack up {{profile}}
    @cargo xtask examples

# Stop the local stack (every profile)
down:
    cargo xtask stack down

# Stop a profile and delete its state, e.g. the scale profile's database: `just reset scale`
reset profile:
    cargo xtask stack reset {{profile}}

# Everything CI checks, offline first, then every suite through a real gateway (a running dev stack is stopped for the suites that need their own)
test: test-rust test-offline test-k8s check-openapi test-e2e test-faults test-scale fuzz test-auth bench-smoke test-cluster

# Print the line that puts the pinned tools (grpcurl, ...) on a shell's PATH: eval "$(just shell-env)"
shell-env:
    @cargo xtask shell-env

# Install pinned tools: the default set, or the named tools or groups of crates/xtask/pins.toml (idempotent)
tools *names:
    cargo xtask tools {{names}}

# ---- develop ----

# Unit and integration tests: no stack, no tools (crates/e2e is left out, see docs/development.md)
test-rust:
    cargo test --locked --no-fail-fast

# The offline gateway checks: Envoy Gateway's translator and kustomize on our objects (pinned egctl, kubectl)
test-offline:
    cargo xtask e2e offline

# rustfmt, clippy (warnings are errors), cargo deny, buf lint, buf breaking against the previous commit
lint: tools deny
    cargo xtask lint

# Format the Rust code
fmt:
    cargo fmt --all

# Run customer-service locally (:50051); e.g. `just run-customer --log-format json`
run-customer *ARGS:
    cargo run --locked --bin customer-service -- {{ARGS}}

# Run product-service locally (:50052); e.g. `just run-product --empty`
run-product *ARGS:
    cargo run --locked --bin product-service -- {{ARGS}}

# ---- gateway ----

# What runs, per profile (pids, logs under .local/stack)
ps:
    cargo xtask stack status

# Re-render the gateway patches in k8s/gateway/ from proto/ (commit the result)
render:
    cargo run --quiet --locked -p envoy-ext

# End-to-end tests through the local gateway; starts the dev stack if needed (and then stops it)
test-e2e: _build-services
    cargo xtask e2e dev

_build-services:
    cargo build --locked --bins -p customer-service -p product-service

# ---- bench (docs/performance.md) ----

# Benchmark the stack (release build, no rate limits) and the service; results in crates/bench/results/ (knobs: BENCH_DURATION, BENCH_RATE, BENCH_CONCURRENCY, BENCH_RECORDS)
bench:
    cargo xtask bench crates/bench/results

# The bench in seconds (1 s runs, small stores): proves the pipeline and its outputs; fails on any tool error
bench-smoke:
    cargo xtask bench --smoke .local/bench/smoke

# ---- reliability (docs/reliability.md, docs/reliability-faults.md) ----

# Regenerate docs/openapi/api.swagger.yaml from proto/ (commit the result)
openapi: (tools "default" "reliability")
    buf generate proto --template docs/openapi/buf.gen.yaml --output docs/openapi

# Fail when the committed OpenAPI spec differs from what proto/ generates
check-openapi: (tools "default" "reliability")
    cargo xtask check-openapi

# Supply chain: licenses, banned/duplicate crates, sources (deny.toml says why advisories are not checked)
deny: (tools "deny")
    cargo fetch --locked --quiet && cargo deny --locked --offline check licenses bans sources

# Fuzz the REST API through the gateway with schemathesis (fuzz profile: no rate limits): no 5xx, no schema violation, nothing crashed
fuzz: (tools "reliability") _build-services
    cargo xtask stack run --stop-others fuzz -- cargo xtask fuzz

# Services killed and restarted under load behind the gateway, two instances each (ha profile)
test-faults: _build-services
    cargo xtask e2e faults

# The stack as it scales out (scale profile): the global rate-limit tier across an Envoy restart and with Redis down
test-scale: _build-services
    cargo xtask e2e scale

# ---- auth (docs/auth.md) ----

# The local stack with auth: `just up` + Keycloak on 127.0.0.1:8180 (auth profile)
up-auth: _build-services
    cargo xtask stack up auth
    @cargo xtask examples --auth

# Print an access token for a test user of the running Keycloak (alice, bob, carol, dave; password = name)
token user realm="envoy-poc":
    @cargo xtask token {{user}} {{realm}}

# Auth end-to-end suite against a real Keycloak: the auth profile, crates/e2e/tests/auth.rs
test-auth: check-auth _build-services
    cargo xtask e2e auth

# Offline: Envoy Gateway's translator accepts the auth layer on the cluster overlay (JWT, RBAC on gRPC paths, per-user limit)
check-auth: tools
    #!/usr/bin/env bash
    set -euo pipefail
    dir=.local/check-auth; rm -rf "$dir"; mkdir -p "$dir"
    # The translate check's input (cluster overlay, egctl-friendly) plus the auth layer.
    printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
      "resources: [../../envoy-ext/tests/translate, ../../k8s/keycloak]" \
      "components: [../../k8s/auth]" >"$dir/kustomization.yaml"
    kubectl kustomize "$dir" >"$dir/input.yaml"
    kubectl kustomize k8s/overlays/local-auth >/dev/null
    egctl x translate --from gateway-api --to xds,gateway-api -t all -f "$dir/input.yaml" >"$dir/output.yaml"
    python3 - "$dir/output.yaml" <<'PY'
    import sys
    out = open(sys.argv[1]).read()
    def need(text, why):
        if text not in out: sys.exit(f"check-auth: {why}: {text!r} not in {sys.argv[1]}")
    for route in ("customer", "product"):
        need(f"regex: ^/{route}\\.v1\\.{route.capitalize()}Service/(Get|List)[A-Za-z]*$", f"{route}: read rule on the gRPC path")
        need(f"regex: ^/{route}\\.v1\\.{route.capitalize()}Service/(Create|Update|Delete)[A-Za-z]*$", f"{route}: write rule")
    need("envoy.filters.http.jwt_authn", "JWT filter")
    need("headerName: x-user-id", "per-user rate-limit descriptor")
    assert out.count("reason: Accepted") >= 2 and "reason: Invalid" not in out, "a policy is not accepted"
    filters = [l.strip() for l in out.splitlines() if l.strip().startswith("- name: envoy.filters.http.")]
    order = [f for f in filters if any(k in f for k in ("grpc_json_transcoder", "jwt_authn", "rbac", "local_ratelimit"))]
    want = ["grpc_json_transcoder", "jwt_authn", "rbac", "local_ratelimit"]
    assert [next(k for k in want if k in f) for f in order[:4]] == want, f"filter order: {order}"
    print("check-auth: SecurityPolicies accepted; transcoder -> jwt_authn -> rbac -> local_ratelimit; per-user descriptor present")
    PY

# Deploy with auth: `just deploy`, then Keycloak (k8s/keycloak, dev mode) and, once it serves the realm, the auth layer (k8s/auth)
deploy-auth: deploy
    #!/usr/bin/env bash
    set -euo pipefail
    echo "==> Keycloak (dev mode) in {{k8s_namespace}}"
    kubectl apply --server-side --force-conflicts -k k8s/keycloak
    kubectl -n "{{k8s_namespace}}" rollout status deployment/keycloak --timeout=600s
    # The deploy overlay `just deploy` wrote (this build's image tags) + the auth layer.
    dir="{{k8s_work}}/deploy-auth"; mkdir -p "$dir"
    printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
      "resources: [../deploy, ../../../k8s/keycloak]" "components: [../../../k8s/auth]" >"$dir/kustomization.yaml"
    echo "==> auth layer (SecurityPolicies, per-user rate limits)"
    kubectl apply --server-side --force-conflicts -k "$dir"
    echo "tokens: kubectl -n {{k8s_namespace}} port-forward svc/keycloak 8180:8180 & just token alice"

# ---- kubernetes ----
# Images, kustomize manifests, the Envoy Gateway install and the cluster path.
# docs/kubernetes.md explains the choices; docs/setup-guide.md the machine setup.
helm_version := "v3.22.0"
kubectl_validate_version := "v0.0.4"
# Kubernetes schema version kubectl-validate checks built-in kinds against
# (the newest its built-in schemas cover).
k8s_schema_version := "1.30"
# Debian bookworm's buildah, only used by `image-check` (no Docker engine in CI).
buildah_apt_version := "1.28.2+ds1-3+deb12u1+b3"
k8s_services := "customer-service product-service"
k8s_namespace := "envoy-poc"
eg_namespace := "envoy-gateway-system"
k8s_work := justfile_directory() / ".local/k8s"

# ---- local cluster (docs/local-cluster.md) ----
# A real single-node Kubernetes on this Linux machine as host processes, for
# machines without Docker (CI): `just cluster-up`, then the same path as on
# Docker Desktop or kind (`just images deploy smoke`).

# Start the local cluster (builds Kubernetes from the Go module proxy the first time); kubectl context envoy-poc-local
cluster-up: tools _tools-k8s _tools-buildah
    k8s/local-cluster/cluster.sh up

# Stop the local cluster and undo its host changes (state stays in .local/cluster; `cluster-reset` removes it)
cluster-down:
    k8s/local-cluster/cluster.sh down

# Stop the local cluster and delete its state
cluster-reset:
    k8s/local-cluster/cluster.sh reset

# The local cluster end to end (CI): up, the user's path (images, deploy, smoke, status, logs), every e2e suite and the cluster faults through its gateway, undeploy, down
test-cluster: cluster-up
    #!/usr/bin/env bash
    set -euo pipefail
    trap 'k8s/local-cluster/cluster.sh down' EXIT
    cargo test --locked -p e2e --no-run
    (cd k8s/local-cluster/components && go test ./kube)
    started=$SECONDS
    just images deploy smoke status logs
    export $(k8s/local-cluster/cluster.sh env) E2E_KUBE_CONTEXT=envoy-poc-local
    cargo test --locked -p e2e
    cargo test --locked -p e2e --test cluster_faults -- --include-ignored --test-threads=1 --nocapture
    just undeploy
    echo "test-cluster: ok in $((SECONDS - started)) s (after cluster-up)"

# Build both service images, tagged <crate version>-<git sha> and <crate version> (Docker; without a Docker engine: buildah, loaded into the local cluster)
images:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! docker info >/dev/null 2>&1; then exec k8s/local-cluster/cluster.sh images; fi
    tag=$(just --quiet _image-tag)
    version=${tag%%-*}
    for svc in {{k8s_services}}; do
      echo "==> envoy-poc/$svc:$tag"
      docker build --build-arg SERVICE="$svc" \
        -t "envoy-poc/$svc:$tag" -t "envoy-poc/$svc:$version" .
    done
    docker image ls --filter reference='envoy-poc/*' --format '{{{{.Repository}}:{{{{.Tag}}  {{{{.Size}}'
    echo "kind users: kind load docker-image envoy-poc/customer-service:$tag envoy-poc/product-service:$tag"

# The image tag: workspace version + short git sha (+ -dirty for uncommitted changes)
_image-tag:
    #!/usr/bin/env bash
    set -euo pipefail
    version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
    sha=$(git rev-parse --short=8 HEAD)
    git diff --quiet HEAD -- Cargo.toml Cargo.lock crates proto Dockerfile || sha="$sha-dirty"
    echo "$version-$sha"

# Install the tools the offline Kubernetes checks need (pinned; idempotent)
_tools-k8s:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{tools_bin}}"
    stamp="{{tools_dir}}/.go-kubectl-validate-{{kubectl_validate_version}}"
    if [ ! -e "$stamp" ] || [ ! -x "{{tools_bin}}/kubectl-validate" ]; then
      echo "installing kubectl-validate {{kubectl_validate_version}} (go install, first time only)"
      GOBIN="{{tools_bin}}" go install "sigs.k8s.io/kubectl-validate@{{kubectl_validate_version}}"
      touch "$stamp"
    fi
    stamp="{{tools_dir}}/.go-helm-{{helm_version}}"
    if [ ! -e "$stamp" ] || [ ! -x "{{tools_bin}}/helm" ]; then
      echo "installing helm {{helm_version}} (go install, first time only)"
      GOBIN="{{tools_bin}}" go install "helm.sh/helm/v3/cmd/helm@{{helm_version}}"
      touch "$stamp"
    fi
    for t in kubectl egctl; do
      command -v "$t" >/dev/null || { echo "$t missing: run 'just tools'" >&2; exit 1; }
    done

# buildah from Debian, pinned (image-check only; needs root + apt)
_tools-buildah:
    #!/usr/bin/env bash
    set -euo pipefail
    have=$(dpkg-query -W -f='${Version}' buildah 2>/dev/null || true)
    [ "$have" = "{{buildah_apt_version}}" ] && exit 0
    echo "installing buildah {{buildah_apt_version}} (apt, first time only; have: ${have:-none})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "buildah={{buildah_apt_version}}" >/dev/null

# Prove the runtime image without Docker: static binaries, scratch image via buildah, size, a real start + health check from the image's own filesystem
image-check: _tools-buildah
    #!/usr/bin/env bash
    set -euo pipefail
    # Static binaries from this machine's toolchain: the musl target if rustup
    # has it, else glibc with crt-static (a static-pie executable).
    if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
      target=x86_64-unknown-linux-musl; flags=""
    else
      target=x86_64-unknown-linux-gnu; flags="-C target-feature=+crt-static"
    fi
    # The Docker build context (the `!` lines of .dockerignore) must hold the
    # whole workspace, or `docker build` fails where nobody tested it.
    ctx="{{k8s_work}}/docker-context"; rm -rf "$ctx"; mkdir -p "$ctx"
    for path in $(sed -n 's|^!\(.*\)|\1|p' .dockerignore); do cp -r --parents "${path%/}" "$ctx/"; done
    find "$ctx" -name target -type d -prune -exec rm -rf {} +
    (cd "$ctx" && cargo metadata --no-deps --offline --format-version 1 >/dev/null) \
      || { echo "FAIL: the Docker build context misses workspace files (see .dockerignore)" >&2; exit 1; }
    echo "docker build context: workspace loads from $(sed -n 's|^!||p' .dockerignore | tr '\n' ' ')"
    echo "==> cargo build --release --target $target ${flags:+(RUSTFLAGS=$flags)}"
    RUSTFLAGS="$flags" cargo build --release --locked --target "$target" \
      $(printf -- '-p %s ' {{k8s_services}})
    work="{{k8s_work}}/buildah"; mkdir -p "$work"
    B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
    export BUILDAH_ISOLATION=chroot
    # Private storage: drop leftovers of earlier runs (containers, images of older tags).
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
    grpcurl=$(command -v grpcurl || echo /root/go/bin/grpcurl)
    tag=$(just --quiet _image-tag)
    pids=(); ctrs=()
    cleanup() {
      for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
      for c in "${ctrs[@]}"; do "${B[@]}" rm "$c" >/dev/null 2>&1 || true; done
    }
    trap cleanup EXIT
    for svc in {{k8s_services}}; do
      bin="target/$target/release/$svc"
      echo "==> $svc"
      file -b "$bin"
      # `ldd` exits 0 on static-pie too, so judge by what it prints: no "=>" (no shared libraries).
      if ! file -b "$bin" | grep -qE 'static(-pie)? linked|statically linked' || ldd "$bin" 2>&1 | grep -q '=>'; then
        echo "FAIL: $bin is dynamically linked" >&2; ldd "$bin" >&2; exit 1
      fi
      echo "ldd: $(ldd "$bin" 2>&1 | tr -d '\t')"
      # The same layout as the Dockerfile's runtime stage.
      ctr=$("${B[@]}" from --name "check-$svc" scratch); ctrs+=("$ctr")
      "${B[@]}" copy --chown 65532:65532 "$ctr" "$bin" /service >/dev/null
      "${B[@]}" config --user 65532:65532 --entrypoint '["/service"]' --cmd '' \
        --port 50051 --port 50052 --label "org.opencontainers.image.title=$svc" "$ctr"
      "${B[@]}" commit --quiet --rm "$ctr" "envoy-poc/$svc:$tag" >/dev/null; ctrs=("${ctrs[@]:0:${#ctrs[@]}-1}")
      "${B[@]}" inspect --type image --format 'user={{{{.OCIv1.Config.User}} entrypoint={{{{.OCIv1.Config.Entrypoint}}{{{{println}}' "envoy-poc/$svc:$tag"
      size=$("${B[@]}" images --noheading --format '{{{{.Size}}' "envoy-poc/$svc:$tag")
      bytes=$(stat -c %s "$bin")
      echo "image envoy-poc/$svc:$tag: $size (binary $((bytes / 1024)) KiB)"
      [ "$bytes" -le $((20 * 1024 * 1024)) ] || { echo "FAIL: $svc binary over 20 MiB" >&2; exit 1; }
      # Run the entrypoint from the image's filesystem (nothing else in it) as
      # the image's user: `buildah run` for --help, then a real server started
      # by chroot into the mounted image, probed the way the kubelet does.
      ctr=$("${B[@]}" from --name "run-$svc" "envoy-poc/$svc:$tag"); ctrs+=("$ctr")
      "${B[@]}" run --user 65532:65532 "$ctr" -- /service --help >/dev/null
      rootfs=$("${B[@]}" mount "$ctr")
      log="$work/$svc.log"
      # A free port (50051/50052 may be taken by a dev server on this machine).
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      chroot --userspec=65532:65532 "$rootfs" /service --host 127.0.0.1 --port "$port" \
        --drain-timeout 2s >"$log" 2>&1 & pid=$!; pids+=("$pid")
      health() { "$grpcurl" -plaintext -max-time 1 -d "{\"service\":\"$1\"}" "127.0.0.1:$port" grpc.health.v1.Health/Check 2>/dev/null || true; }
      ok=""
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        if health "" | grep -q '"SERVING"'; then ok=1; break; fi
        sleep 0.2
      done
      [ -n "$ok" ] && kill -0 "$pid" 2>/dev/null \
        || { echo "FAIL: $svc from the image never became SERVING" >&2; cat "$log" >&2; exit 1; }
      case "$svc" in customer-service) name=customer.v1.CustomerService ;; *) name=product.v1.ProductService ;; esac
      health "$name" | grep -q '"SERVING"' || { echo "FAIL: $svc: health \"$name\" is not SERVING" >&2; exit 1; }
      echo "$svc from the image: health \"\" and \"$name\" SERVING on 127.0.0.1:$port as uid 65532"
      # SIGTERM must end it within the drain timeout, with status 0.
      kill -TERM "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then echo "FAIL: $svc still running 4s after SIGTERM" >&2; exit 1; fi
      wait "$pid" || { echo "FAIL: $svc exited non-zero after SIGTERM" >&2; cat "$log" >&2; exit 1; }
      echo "$svc: SIGTERM -> clean exit"
      "${B[@]}" umount "$ctr" >/dev/null
    done
    echo "image-check: ok"

# Offline Kubernetes checks: every overlay builds, every object (built-in and CRD) validates against its schema with unknown fields rejected, and the validator is proven to reject broken manifests
test-k8s: _tools-k8s && image-check
    #!/usr/bin/env bash
    set -euo pipefail
    work="{{k8s_work}}/test"; rm -rf "$work"; mkdir -p "$work/rendered" "$work/crds"
    # The CRDs of the pinned Envoy Gateway release (Gateway API + gateway.envoyproxy.io),
    # taken from its Go module: the same files its helm chart installs.
    egdir=$(cd "$work" && go mod download -json "github.com/envoyproxy/gateway@{{envoy_gateway_version}}" \
      | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    crds="$egdir/charts/gateway-helm/charts/crds/crds"
    [ -d "$crds" ] || { echo "FAIL: no CRDs at $crds" >&2; exit 1; }
    find "$crds" -name '*.yaml' -exec cp {} "$work/crds/" \;
    echo "CRDs: $(ls "$work/crds" | wc -l) files from envoyproxy/gateway {{envoy_gateway_version}}"
    # 1. Every kustomization builds.
    overlays="k8s/base $(find k8s/overlays -mindepth 1 -maxdepth 1 -type d | sort | tr '\n' ' ')"
    for dir in $overlays; do
      name=$(echo "$dir" | tr / -)
      kubectl kustomize "$dir" >"$work/rendered/$name.yaml"
      n=$(grep -c '^kind:' "$work/rendered/$name.yaml" || true)
      [ "$n" -gt 0 ] || { echo "FAIL: kustomize $dir rendered no objects" >&2; exit 1; }
      echo "kustomize $dir: $n objects"
    done
    # 2. Every object validates: built-in kinds against the Kubernetes
    #    {{k8s_schema_version}} OpenAPI schemas built into kubectl-validate, CRD kinds
    #    against the CRDs above; unknown fields and unknown kinds are errors.
    validate() { kubectl-validate "$@" --version "{{k8s_schema_version}}" --local-crds "$work/crds"; }
    validate "$work/rendered"
    # 3. The check above must be able to fail: break a rendered manifest in
    #    three ways and expect a rejection each time.
    mkdir -p "$work/broken"
    src="$work/rendered/k8s-overlays-cluster.yaml"
    expect_reject() { # label sed-expression expected-error
      sed "$2" "$src" >"$work/broken/broken.yaml"
      cmp -s "$src" "$work/broken/broken.yaml" && { echo "FAIL: self-test '$1' changed nothing" >&2; exit 1; }
      if validate "$work/broken/broken.yaml" >"$work/broken/$1.log" 2>&1; then
        echo "FAIL: validator accepted a manifest with $1" >&2; exit 1
      fi
      grep -qF -- "$3" "$work/broken/$1.log" \
        || { echo "FAIL: self-test '$1' rejected for another reason:" >&2; cat "$work/broken/$1.log" >&2; exit 1; }
      echo "self-test: $1 rejected ($3)"
    }
    expect_reject unknown-field-builtin 's/^  replicas: 1$/  replicas: 1\n  replicaz: 1/' 'spec.replicaz'
    expect_reject typo-kind 's/^kind: PodDisruptionBudget$/kind: PodDisruptionBudgett/' 'PodDisruptionBudgett not found'
    expect_reject unknown-field-crd-top 's/^kind: GRPCRoute$/kind: GRPCRoute\nspec2: {}/' 'spec2'
    expect_reject unknown-field-crd-nested 's/^      rules:$/      rulez:/' 'spec.rateLimit.local.rulez'
    # 4. The gateway objects and the base Services fit together: Envoy Gateway's
    #    own translator (egctl, same release) must accept every GRPCRoute of the
    #    cluster overlay and resolve every backendRef to a Service port. Self-test:
    #    a Service port that no longer matches must be reported.
    routes_ok() { # rendered.yaml -> prints route conditions, fails unless all are True
      egctl x translate -f "$1" --to gateway-api -o json | python3 -c '
    import json, sys
    routes = json.load(sys.stdin).get("grpcRoutes") or []
    bad = 0
    for r in routes:
        for p in r["status"]["parents"]:
            for c in p["conditions"]:
                print("  GRPCRoute %s: %s=%s (%s) %s" % (r["metadata"]["name"], c["type"], c["status"], c.get("reason", ""), c.get("message", "")))
                bad += c["status"] != "True"
    sys.exit(1 if bad or not routes else 0)'
    }
    routes_ok "$src" || { echo "FAIL: GRPCRoutes of k8s/overlays/cluster not accepted/resolved" >&2; exit 1; }
    n=$(grep -n '^    port: 50052$' "$src" | head -n 1 | cut -d: -f1)   # the product-service Service port
    sed "${n}s/50052/50053/" "$src" >"$work/broken/port.yaml"
    if routes_ok "$work/broken/port.yaml" >"$work/broken/port.log" 2>&1; then
      echo "FAIL: egctl accepted a Service port that matches no backendRef" >&2; exit 1
    fi
    grep -q PortNotFound "$work/broken/port.log" || { cat "$work/broken/port.log" >&2; exit 1; }
    echo "self-test: Service port mismatch rejected (PortNotFound)"
    # 5. Our helm values against the real chart: render the v1.9.0 chart from
    #    the same module (the OCI chart is packaged from it, with values.tmpl.yaml's
    #    image placeholders filled in) and check the EnvoyGateway configuration
    #    it produces. EG decodes that configuration leniently (a misspelt key
    #    would be dropped silently), hence the explicit assertions.
    chart=$(k8s/envoy-gateway/chart.sh "{{envoy_gateway_version}}" "$work")
    helm template eg "$chart" -n "{{eg_namespace}}" -f k8s/envoy-gateway/values.yaml >"$work/eg-chart.yaml"
    sed -n '/^  envoy-gateway.yaml: |$/,/^---$/p' "$work/eg-chart.yaml" >"$work/eg-config.yaml"
    for want in 'kind: EnvoyGateway' 'enableEnvoyPatchPolicy: true' 'enableBackend: true' '- XDSNameSchemeV2'; do
      grep -qF -- "$want" "$work/eg-config.yaml" || { echo "FAIL: EG config lacks '$want'" >&2; cat "$work/eg-config.yaml" >&2; exit 1; }
    done
    sed -n '/^    runtimeFlags:$/,/^---$/p' "$work/eg-config.yaml" | grep -q -- '- XDSNameSchemeV2' \
      || { echo "FAIL: XDSNameSchemeV2 is not under runtimeFlags" >&2; exit 1; }
    echo "helm template gateway-helm {{envoy_gateway_version}} + k8s/envoy-gateway/values.yaml: EnvoyPatchPolicy, Backend, XDSNameSchemeV2 on"
    echo "test-k8s: ok"

# helm on PATH, else the pinned one via `go install` (deploy/undeploy only)
_helm:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v helm >/dev/null && exit 0
    command -v go >/dev/null || { echo "helm {{helm_version}} not found: install it (docs/setup-guide.md)" >&2; exit 1; }
    echo "installing helm {{helm_version}} (go install, first time only)"
    mkdir -p "{{tools_bin}}"
    GOBIN="{{tools_bin}}" go install "helm.sh/helm/v3/cmd/helm@{{helm_version}}"

# Refuse to talk to "no context" (kubectl would fall back to localhost:8080, where the local stack's gateway may listen)
_k8s-context:
    @kubectl config current-context >/dev/null 2>&1 || { echo "no kubectl context: enable Kubernetes in Docker Desktop or 'kind create cluster' (docs/setup-guide.md)" >&2; exit 1; }

# Deploy to the current kubectl context: the pinned Envoy Gateway (helm), then k8s/overlays/cluster; prints the gateway address
deploy: _k8s-context _helm
    #!/usr/bin/env bash
    set -euo pipefail
    ctx=$(kubectl config current-context)
    tag=$(just --quiet _image-tag)
    echo "==> context $ctx, images envoy-poc/*:$tag"
    for svc in {{k8s_services}}; do
      if docker info >/dev/null 2>&1 && ! docker image inspect "envoy-poc/$svc:$tag" >/dev/null 2>&1; then
        echo "image envoy-poc/$svc:$tag not found locally: run 'just images' first" >&2; exit 1
      fi
    done
    # The upstream chart from docker.io; the local cluster (`just cluster-up`)
    # reaches no registry: the same release's chart from its Go module, and
    # images built on the machine (k8s/local-cluster/eg-values.yaml).
    chart=(oci://docker.io/envoyproxy/gateway-helm --version "{{envoy_gateway_version}}"); values=()
    case "$ctx" in
      kind-*)
        echo "==> kind load docker-image (cluster ${ctx#kind-})"
        kind load docker-image --name "${ctx#kind-}" $(printf "envoy-poc/%s:$tag " {{k8s_services}}) ;;
      envoy-poc-local)
        chart=("$(k8s/envoy-gateway/chart.sh "{{envoy_gateway_version}}" "{{k8s_work}}/chart")")
        values=(-f k8s/local-cluster/eg-values.yaml) ;;
    esac
    echo "==> Envoy Gateway {{envoy_gateway_version}} (helm, namespace {{eg_namespace}})"
    helm upgrade --install eg "${chart[@]}" -n "{{eg_namespace}}" --create-namespace \
      -f k8s/envoy-gateway/values.yaml "${values[@]}" --wait --timeout 5m
    kubectl -n "{{eg_namespace}}" wait --for=condition=Available deployment/envoy-gateway --timeout=180s
    # A throwaway overlay pins this build's tag without editing tracked files.
    dir="{{k8s_work}}/deploy"; mkdir -p "$dir"
    printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
      "resources: [../../../k8s/overlays/cluster]" "images:" \
      "  - {name: envoy-poc/customer-service, newTag: \"$tag\"}" \
      "  - {name: envoy-poc/product-service, newTag: \"$tag\"}" >"$dir/kustomization.yaml"
    echo "==> kubectl apply -k k8s/overlays/cluster (tag $tag)"
    kubectl apply --server-side --force-conflicts -k "$dir"
    for svc in {{k8s_services}}; do
      kubectl -n "{{k8s_namespace}}" rollout status "deployment/$svc" --timeout=180s
    done
    # A rollout is "done" while the old pods still drain (preStop), and each
    # pod keeps its own in-memory data: until they are gone a read may reach
    # one that never saw a write (found by smoke on the local cluster).
    draining() { kubectl -n "{{k8s_namespace}}" get pods -l app.kubernetes.io/part-of=envoy-poc \
      -o jsonpath='{.items[?(@.metadata.deletionTimestamp)].metadata.name}'; }
    for _ in $(seq 1 60); do [ -z "$(draining)" ] && break; sleep 1; done
    # Envoy Gateway creates the Envoy Deployment once it has translated the
    # Gateway; the Gateway is Programmed only once it also has an address,
    # which kind without a LoadBalancer provider never assigns (port-forward).
    envoy=gateway.envoyproxy.io/owning-gateway-name=eg,gateway.envoyproxy.io/owning-gateway-namespace={{k8s_namespace}}
    for _ in $(seq 1 60); do [ -n "$(kubectl -n "{{eg_namespace}}" get deployment -l "$envoy" -o name)" ] && break; sleep 2; done
    kubectl -n "{{eg_namespace}}" wait --for=condition=Available deployment -l "$envoy" --timeout=180s
    if ! kubectl -n "{{k8s_namespace}}" wait --for=condition=Programmed gateway/eg --timeout=30s; then
      reason=$(kubectl -n "{{k8s_namespace}}" get gateway eg -o jsonpath='{.status.conditions[?(@.type=="Programmed")].reason}')
      [ "$reason" = AddressNotAssigned ] || { kubectl -n "{{k8s_namespace}}" describe gateway eg >&2; exit 1; }
      echo "gateway eg: no LoadBalancer address in this cluster (AddressNotAssigned): reaching it by port-forward"
    fi
    just --quiet _gateway-address

# Find (or open) a reachable gateway address and record it for `smoke`
_gateway-address:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="{{k8s_work}}"; mkdir -p "$dir"
    port=$(kubectl -n "{{k8s_namespace}}" get gateway eg -o jsonpath='{.spec.listeners[0].port}')
    host=$(kubectl -n "{{k8s_namespace}}" get gateway eg -o jsonpath='{.status.addresses[0].value}')
    reachable() { curl -s -o /dev/null --max-time 3 "http://$1/customers"; }
    # The LoadBalancer address the cluster reports, if this machine reaches
    # it: Docker Desktop reports (and publishes on) localhost. Never a blind
    # localhost:8080: that may be the local stack (`just up`), not the cluster.
    if [ -n "$host" ] && reachable "$host:$port"; then
      echo "$host:$port" >"$dir/gateway-address"; echo "gateway: http://$host:$port (gRPC and REST)"; exit 0
    fi
    # kind and friends: no reachable LoadBalancer, so port-forward the Envoy Service.
    svc=$(kubectl -n "{{eg_namespace}}" get service -o name \
      -l gateway.envoyproxy.io/owning-gateway-name=eg,gateway.envoyproxy.io/owning-gateway-namespace={{k8s_namespace}} | head -n 1)
    [ -n "$svc" ] || { echo "no Envoy Service for gateway eg in {{eg_namespace}}" >&2; exit 1; }
    if [ -e "$dir/port-forward.pid" ]; then kill "$(cat "$dir/port-forward.pid")" 2>/dev/null || true; fi
    local_port=${GATEWAY_LOCAL_PORT:-18080}
    nohup kubectl -n "{{eg_namespace}}" port-forward "$svc" "$local_port:$port" >"$dir/port-forward.log" 2>&1 &
    echo $! >"$dir/port-forward.pid"
    for _ in $(seq 1 30); do reachable "127.0.0.1:$local_port" && break; sleep 1; done
    reachable "127.0.0.1:$local_port" || { echo "port-forward failed:" >&2; cat "$dir/port-forward.log" >&2; exit 1; }
    echo "127.0.0.1:$local_port" >"$dir/gateway-address"
    echo "gateway: http://127.0.0.1:$local_port (port-forward to $svc, pid $(cat "$dir/port-forward.pid"))"

# Exercise the deployed gateway: gRPC reflection + call, REST CRUD on /customers, a burst that must hit the rate limit (429)
smoke:
    #!/usr/bin/env bash
    set -euo pipefail
    addr=${GATEWAY:-$(cat "{{k8s_work}}/gateway-address" 2>/dev/null || true)}
    [ -n "$addr" ] || { echo "no gateway address: run 'just deploy' (or set GATEWAY=host:port)" >&2; exit 1; }
    grpcurl=$(command -v grpcurl || echo /root/go/bin/grpcurl)
    fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
    echo "==> gateway $addr"
    services=$("$grpcurl" -plaintext "$addr" list)
    echo "$services"
    for s in customer.v1.CustomerService product.v1.ProductService; do
      grep -qx "$s" <<<"$services" || fail "reflection does not list $s"
    done
    "$grpcurl" -plaintext -d '{"page_size": 2}' "$addr" customer.v1.CustomerService/ListCustomers >/dev/null \
      || fail "gRPC ListCustomers"
    echo "gRPC ListCustomers: ok"
    base="http://$addr/customers"
    created=$(curl -sS --fail-with-body -X POST "$base" -H 'content-type: application/json' \
      -d '{"name":"Smoke Test","email":"smoke@example.com"}') || fail "POST /customers: $created"
    id=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' <<<"$created")
    [ -n "$id" ] || fail "POST /customers returned no id: $created"
    echo "POST /customers -> $id"
    curl -sS --fail-with-body "$base/$id" >/dev/null || fail "GET /customers/$id"
    curl -sS --fail-with-body -X PATCH "$base/$id?update_mask=name" -H 'content-type: application/json' \
      -d '{"name":"Smoke Test 2"}' | grep -q 'Smoke Test 2' || fail "PATCH /customers/$id"
    curl -sS --fail-with-body -X DELETE "$base/$id" >/dev/null || fail "DELETE /customers/$id"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/$id")
    [ "$code" = 404 ] || fail "GET after DELETE gave $code, want 404"
    echo "REST CRUD /customers: ok"
    # A burst against the 100/minute per-route limit (SMOKE_BURST=0 skips it,
    # e.g. against a shared local stack whose bucket others are using).
    burst=${SMOKE_BURST:-150}
    if [ "$burst" -gt 0 ]; then
      limited=0
      for _ in $(seq 1 "$burst"); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base?page_size=1")
        [ "$code" = 429 ] && limited=$((limited + 1))
      done
      [ "$limited" -gt 0 ] || fail "$burst-request burst: no 429"
      echo "rate limit: $limited of $burst burst requests got 429"
    else
      echo "rate limit: burst skipped (SMOKE_BURST=0)"
    fi
    echo "smoke: ok"

# What is running: gateway status, routes, policies, pods
status: _k8s-context
    -kubectl -n "{{eg_namespace}}" get deployments,pods,services
    -kubectl -n "{{k8s_namespace}}" get gateway,grpcroute,backendtrafficpolicy,envoypatchpolicy
    -kubectl -n "{{k8s_namespace}}" get deployments,pods,services,pdb,networkpolicy
    -@cat "{{k8s_work}}/gateway-address" 2>/dev/null | sed 's/^/gateway address: /'

# Recent logs of both services (follow with: just logs -f)
logs *args: _k8s-context
    kubectl -n "{{k8s_namespace}}" logs -l app.kubernetes.io/part-of=envoy-poc --prefix --tail=100 --max-log-requests=10 {{args}}

# Remove everything `deploy` created (idempotent; the Gateway API/EG CRDs stay)
undeploy: _k8s-context
    #!/usr/bin/env bash
    set -euo pipefail
    dir="{{k8s_work}}"
    if [ -e "$dir/port-forward.pid" ]; then kill "$(cat "$dir/port-forward.pid")" 2>/dev/null || true; rm -f "$dir/port-forward.pid"; fi
    rm -f "$dir/gateway-address"
    # Gateway API kinds are unknown to a cluster that never had Envoy Gateway;
    # there is nothing of them to delete then, so that error is not fatal.
    kubectl delete -k k8s/overlays/cluster --ignore-not-found --wait=true \
      || echo "(some kinds are unknown to this cluster: nothing of them to delete)"
    kubectl delete namespace "{{k8s_namespace}}" --ignore-not-found
    if command -v helm >/dev/null && helm -n "{{eg_namespace}}" status eg >/dev/null 2>&1; then
      helm -n "{{eg_namespace}}" uninstall eg --wait
    fi
    kubectl delete namespace "{{eg_namespace}}" --ignore-not-found
    echo "undeployed (CRDs kept: kubectl get crd | grep -e gateway.networking.k8s.io -e gateway.envoyproxy.io)"
