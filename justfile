# gRPC-first Rust services behind Envoy Gateway. `just --list` is the table of contents; the logic
# is tested Rust in `cargo xtask` (crates/xtask) and `cargo stack` (crates/stack): docs/development.md.
set shell := ["bash", "-euo", "pipefail", "-c"]

# The pinned tools (crates/xtask/pins.toml) live outside the clone, shared by every checkout.
tools_dir := env("ENVOY_POC_TOOLS", env("HOME") / ".cache/envoy-poc/tools")
tools_bin := tools_dir / "bin"
export PATH := tools_bin + ":" + env("PATH")

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
test: test-rust test-offline test-k8s check-openapi test-e2e test-faults test-scale fuzz (fuzz "scale") test-auth bench-smoke test-cluster

# Print the line that puts the pinned tools (grpcurl, ...) on a shell's PATH: eval "$(just shell-env)"
shell-env:
    @cargo xtask shell-env

# Install pinned tools: the default set, or the named tools or groups of crates/xtask/pins.toml (idempotent)
tools *names:
    cargo xtask tools {{names}}

# ---- develop ----

# Unit and integration tests: no stack, no tools but PostgreSQL's server binaries (crates/e2e is left out, see docs/development.md)
test-rust: (tools "postgresql-15")
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

# Run one service locally, e.g. `just run customer-service --log-format json`, `just run product-service --empty`
run service *ARGS:
    cargo run --locked --bin {{service}} -- {{ARGS}}

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
    cargo xtask build-services

# ---- bench (docs/performance.md) ----

# Benchmark the stack (release build, no rate limits), the service and the rate-limit tiers; results in crates/bench/results/ (knobs: BENCH_DURATION, BENCH_RATE, BENCH_CONCURRENCY, BENCH_RECORDS)
bench:
    cargo xtask bench crates/bench/results

# What the REST extension costs (also part of `just bench`): rounds of the bench stack without it (profile bench-plain-rest), then with it; GET and POST at fixed rates and flat out, p99 and CPU per request compared (target: at most 10% fewer REST req/s)
bench-rest *args:
    cargo xtask bench-rest {{args}}

# What the global rate-limit tier costs (also part of `just bench`): rounds of the scale stack with the local tier only, then both; p99 and CPU per request compared (target <= 1 ms at 1000 req/s)
bench-tiers *args:
    cargo xtask bench-tiers {{args}}

# In-memory beside PostgreSQL (also part of `just bench`): Get/List/Create through the gateway, two instances each, 100k rows (BENCH_STORE_RECORDS); the List query's plan; crates/bench/results/stores.md
bench-stores:
    cargo xtask bench-stores

# The bench in seconds (1 s runs, small stores): proves the pipeline and its outputs; fails on any tool error
bench-smoke:
    cargo xtask bench --smoke .local/bench/smoke

# ---- reliability (docs/reliability.md, docs/reliability-faults.md) ----

# Regenerate docs/openapi/api.swagger.yaml from proto/, with the REST extension's 201 for creates (commit the result)
openapi: (tools "default" "reliability")
    cargo xtask openapi

# Fail when the committed OpenAPI spec differs from what proto/ generates
check-openapi: (tools "default" "reliability")
    cargo xtask check-openapi

# Supply chain: licenses, banned/duplicate crates, sources (deny.toml says why advisories are not checked)
deny: (tools "deny")
    cargo fetch --locked --quiet && cargo deny --locked --offline check licenses bans sources

# Fuzz the REST API through the gateway with schemathesis: no 5xx, no schema violation, nothing crashed; `just fuzz scale`: two instances each on PostgreSQL
fuzz stack="dev": (tools "reliability") _build-services
    cargo xtask fuzz {{stack}}

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
check-auth:
    cargo xtask check-auth

# Deploy with auth: `just deploy`, then Keycloak (k8s/keycloak, dev mode) and, once it serves the realm, the auth layer (k8s/auth)
deploy-auth:
    cargo xtask deploy-auth

# ---- kubernetes (docs/kubernetes.md; the logic: crates/xtask/src/k8s) ----

# Build both service images, tagged <crate version>-<git sha> and <crate version> (Docker; without a Docker engine: buildah, loaded into the local cluster)
images:
    cargo xtask images

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

# ---- local cluster (docs/local-cluster.md): a real single-node Kubernetes as host processes, for CI ----

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
