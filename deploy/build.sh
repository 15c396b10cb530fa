#!/usr/bin/env bash
# Builds the dtmfd release binary: static (no cgo), stripped, with build
# paths trimmed and the version stamped in. The Dockerfile and CI both call
# this script, so the image and the CI artefact are built the same way.
#
# Usage: deploy/build.sh [OUTPUT]
#   OUTPUT is relative to the current directory; without it the binary is
#   written to dtmfd at the repository root. VERSION in the environment is
#   what "dtmfd version" prints (default: dev).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/dtmfd}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

# go.mod's toolchain line names Go 1.27.3, and these machines keep the go
# command from switching to it by itself (GOTOOLCHAIN=local in its config
# file). An environment that sets GOTOOLCHAIN, as the golang image does,
# keeps its own.
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

cd "$root"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION:-dev}" -o "$out" ./cmd/dtmfd
