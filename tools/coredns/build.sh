#!/usr/bin/env bash
# Build a small CoreDNS from the Go module pinned in this directory, so pods on mamori's local
# test node can resolve <service>.<namespace>.svc.cluster.local (helm test's pod calls the
# webhook by its Service name). Like tools/helm/build.sh: Go and the Go module proxy are all it
# needs; no release binary is downloaded from anywhere.
#
# main.go links only the plugins the local cluster uses (bind, ready, health, errors, log, cache,
# kubernetes), not CoreDNS's full plugin list, to keep the build small.
#
# Idempotent: rebuilt only when the inputs change (go.mod, go.sum, main.go, this script, the Go
# version); a stamp file records them.
#
# Environment: MAMORI_COREDNS_BIN  output directory (default <repo>/.cache/coredns/bin)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
out="${MAMORI_COREDNS_BIN:-${repo}/.cache/coredns/bin}"

# shellcheck source=tools/controlplane/common.sh
source "${repo}/tools/controlplane/common.sh"
begin_build "${out}"

cd "${here}"
stamp="$(input_stamp go.mod go.sum build.sh main.go "${repo}/tools/controlplane/common.sh")"
if is_current "${stamp}" "${out}" coredns; then
  echo "coredns: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

coredns_version="$(go list -m -f '{{.Version}}' github.com/coredns/coredns)"
# `coredns -version` prints this after the platform line, instead of an empty commit.
ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=mamori-${coredns_version}"

echo "coredns: building ${coredns_version} into ${out}"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
go build -trimpath -ldflags "${ldflags}" -o "${staging}/coredns" .
install_built "${staging}" "${out}" coredns
echo "${stamp}" >"${out}/.stamp"
print_elapsed coredns "${started}"
"${out}/coredns" -version
"${out}/coredns" -plugins
