# syntax=docker/dockerfile:1
#
# One image recipe for every service. Build with nothing but Docker:
#
#   docker build --build-arg SERVICE=customer-service -t envoy-poc/customer-service:dev .
#   docker build --build-arg SERVICE=product-service  -t envoy-poc/product-service:dev .
#
# (`just images` does both and tags them <crate version>-<git sha>.)
#
# The default target (the last stage, `runtime`) is that full build. The
# `runtime-prebuilt` target packs a static binary built outside Docker into the
# same runtime layout; its build context is a directory holding the binary,
# named after the service (k8s/local-cluster/images.sh builds it with buildah,
# on a machine without a Docker engine or registry):
#
#   mkdir ctx && cp target/x86_64-unknown-linux-musl/release/customer-service ctx/
#   docker build -f Dockerfile --target runtime-prebuilt \
#     --build-arg SERVICE=customer-service -t envoy-poc/customer-service:dev ctx
#
# Builder: the official Rust image on Alpine, whose native target is musl, so
# the binary is static on amd64 and arm64 alike (Docker Desktop on Windows,
# Apple silicon, kind on Linux) without cross-compiling. The API crate compiles
# the protos with protox (pure Rust), so no protoc is needed.
# Runtime: `scratch` + one static binary + a non-root user. No shell, no libc,
# no package manager.

ARG RUST_IMAGE=rust:1.95.0-alpine3.22

FROM ${RUST_IMAGE} AS builder
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=customer-service|product-service" >&2; exit 1; }
# gcc from the image links; musl-dev provides the static C runtime objects.
RUN apk add --no-cache musl-dev
WORKDIR /src
# rust-toolchain.toml is excluded by .dockerignore: the image *is* the pinned
# toolchain, and the file would make rustup fetch rustfmt/clippy we do not need.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=envoy-poc-target \
    cargo build --release --locked -p "${SERVICE}" \
 && mkdir -p /out \
 && cp "target/release/${SERVICE}" /out/service

# The runtime layout, shared by both targets below: everything but the binary.
FROM scratch AS runtime-base
ARG SERVICE
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.source="envoy-poc" \
      org.opencontainers.image.licenses="Apache-2.0"
# 65532 = "nonroot" in distroless; the Deployments assert runAsNonRoot.
USER 65532:65532
# customer-service listens on 50051, product-service on 50052 (set by --port).
EXPOSE 50051 50052
ENTRYPOINT ["/service"]

# A static binary built outside Docker: the build context holds it as ./$SERVICE.
FROM runtime-base AS runtime-prebuilt
ARG SERVICE
COPY ${SERVICE} /service

# The default target: the binary from the builder stage above. Keep it last.
FROM runtime-base AS runtime
COPY --from=builder /out/service /service
