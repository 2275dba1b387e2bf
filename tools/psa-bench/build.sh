#!/usr/bin/env bash
# Build psa-bench from the Go modules pinned in this directory, for bench/engine: the API
# server's Pod Security Admission checks (k8s.io/pod-security-admission, the version of the
# local control plane's Kubernetes), timed on the same pods as mamori's engine.
# Like tools/helm/build.sh: Go and the Go module proxy are all it needs.
#
# Idempotent: rebuilt only when the inputs change (go.mod, go.sum, main.go, this script, the Go
# version); a stamp file records them.
#
# Environment: MAMORI_PSA_BENCH_BIN  output directory (default <repo>/.cache/psa-bench)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
out="${MAMORI_PSA_BENCH_BIN:-${repo}/.cache/psa-bench}"

# shellcheck source=tools/controlplane/common.sh
source "${repo}/tools/controlplane/common.sh"
begin_build "${out}"

cd "${here}"
stamp="$(input_stamp go.mod go.sum build.sh main.go "${repo}/tools/controlplane/common.sh")"
if is_current "${stamp}" "${out}" psa-bench; then
  echo "psa-bench: up to date in ${out} (${stamp:0:12})" >&2
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"

echo "psa-bench: building $(go list -m -f '{{.Path}} {{.Version}}' k8s.io/pod-security-admission) into ${out}" >&2
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
go build -trimpath -o "${staging}/psa-bench" .
install_built "${staging}" "${out}" psa-bench
echo "${stamp}" >"${out}/.stamp"
print_elapsed psa-bench "${started}" >&2
