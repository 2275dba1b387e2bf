#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kubectl) from the Go modules pinned in
# this directory, for mamori's integration tests and demo. No Docker, no downloaded release
# binaries: Go and the Go module proxy are all it needs.
#
# Idempotent: the binaries are rebuilt only when the inputs change (go.mod, go.sum, this script,
# the etcd wrapper, the Go version). kubectl is always built from the same pin as the server, so
# client/server version skew can never creep in from whatever kubectl the machine happens to have.
#
# Environment: MAMORI_CONTROLPLANE_BIN  output directory (default <repo>/.cache/controlplane/bin)
#              SOURCE_DATE_EPOCH        fixes the stamped build date (reproducible builds)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
out="${MAMORI_CONTROLPLANE_BIN:-${repo}/.cache/controlplane/bin}"
binaries=(etcd kube-apiserver kubectl)
packages=(./cmd/etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)

command -v go >/dev/null || { echo "build.sh: 'go' is not on PATH (Go >= 1.26 needed)" >&2; exit 2; }
mkdir -p "${out}"

# shellcheck source=tools/controlplane/common.sh
source "${here}/common.sh"
take_build_lock "${out}"

cd "${here}"
stamp_file="${out}/.stamp"
stamp="$(input_stamp go.mod go.sum build.sh common.sh tools.go cmd/etcd/main.go)"
if is_current "${stamp}" "${out}" "${binaries[@]}"; then
  echo "controlplane: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

kube_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
ldflags="$(kube_ldflags)"

echo "controlplane: building etcd, kube-apiserver, kubectl ${kube_version} into ${out}"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
# One invocation for all three, so the shared packages compile once and in parallel.
go build -trimpath -ldflags "${ldflags}" -o "${staging}/" "${packages[@]}"

install_built "${staging}" "${out}" "${binaries[@]}"
echo "${stamp}" >"${stamp_file}"
print_elapsed controlplane "${started}"
"${out}/kube-apiserver" --version
"${out}/etcd" --version | sed -n 1p  # not head: etcd could get SIGPIPE (exit 141)
