#!/usr/bin/env bash
# Build a local Kubernetes node from Go modules, for mamori's real-node tests (`make node`):
#   - kubelet, kube-proxy, kube-controller-manager, kube-scheduler from tools/controlplane's
#     module, i.e. the very k8s.io/kubernetes pin (and go.sum) the API server is built from;
#   - containerd 2.x (CRI plugin built in), its runc shim and ctr, and the CNI plugins bridge,
#     host-local, loopback and portmap, from this directory's module.
# runc itself, iptables and busybox-static come from Debian (packages.sh). No Docker, no release
# binary downloaded from anywhere: Go, the Go module proxy and apt-get are all it needs.
#
# Idempotent: rebuilt only when an input changes (both modules, both tools.go, this script, the
# shared common.sh, the Go version); a stamp file records them.
#
# Environment: MAMORI_NODE_BIN      output directory (default <repo>/.cache/node/bin; the CNI
#                                   plugins go to its cni/ subdirectory)
#              SOURCE_DATE_EPOCH    fixes the stamped build date (reproducible builds)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
kube_module="${repo}/tools/controlplane"
out="${MAMORI_NODE_BIN:-${repo}/.cache/node/bin}"
kube_binaries=(kubelet kube-proxy kube-controller-manager kube-scheduler)
runtime_binaries=(containerd containerd-shim-runc-v2 ctr)
cni_plugins=(bridge host-local loopback portmap)

command -v go >/dev/null || { echo "build.sh: 'go' is not on PATH (Go >= 1.26 needed)" >&2; exit 2; }
bash "${here}/packages.sh"
mkdir -p "${out}/cni"

# shellcheck source=tools/controlplane/common.sh
source "${kube_module}/common.sh"
take_build_lock "${out}"

stamp="$(
  input_stamp "${kube_module}"/{go.mod,go.sum,tools.go,common.sh} \
    "${here}"/{go.mod,go.sum,tools.go,build.sh}
)"
if is_current "${stamp}" "${out}" "${kube_binaries[@]}" "${runtime_binaries[@]}" \
  "${cni_plugins[@]/#/cni/}"; then
  echo "node: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
mkdir -p "${staging}/cni"

cd "${kube_module}"
kube_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
echo "node: building ${kube_binaries[*]} ${kube_version} into ${out}"
go build -trimpath -ldflags "$(kube_ldflags)" -o "${staging}/" \
  "${kube_binaries[@]/#/k8s.io/kubernetes/cmd/}"

cd "${here}"
containerd_version="$(go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)"
cni_version="$(go list -m -f '{{.Version}}' github.com/containernetworking/plugins)"
echo "node: building containerd ${containerd_version} and CNI plugins ${cni_version}"
containerd_pkg=github.com/containerd/containerd/v2
go build -trimpath -o "${staging}/" \
  -ldflags "-s -w -X ${containerd_pkg}/version.Version=${containerd_version}" \
  "${runtime_binaries[@]/#/${containerd_pkg}/cmd/}"
cni_pkg=github.com/containernetworking/plugins
go build -trimpath -o "${staging}/cni/" \
  -ldflags "-s -w -X ${cni_pkg}/pkg/utils/buildversion.BuildVersion=${cni_version}" \
  "${cni_pkg}/plugins/main/bridge" "${cni_pkg}/plugins/ipam/host-local" \
  "${cni_pkg}/plugins/main/loopback" "${cni_pkg}/plugins/meta/portmap"

install_built "${staging}" "${out}" "${kube_binaries[@]}" "${runtime_binaries[@]}" \
  "${cni_plugins[@]/#/cni/}"
echo "${stamp}" >"${out}/.stamp"
print_elapsed node "${started}"
"${out}/kubelet" --version
"${out}/containerd" --version
runc --version | sed -n 1p  # sed reads it all: head could leave runc a SIGPIPE (exit 141)
