#!/usr/bin/env bash
# Build the NetworkPolicy engine for mamori's datapath tests (`make netpol`): kube-router's
# firewall controller (iptables + ipset), from the Go module pinned in this directory. Only the
# tests run it, beside the local node's kubelet, as a firewall and nothing else
# (--run-firewall=true --run-router=false --run-service-proxy=false); it is never shipped in
# mamori's image or chart. Why this engine and this version, and which of its reported flaws do
# not matter for a loopback test node: docs/operator.md, "Datapath tests".
#
# ipset comes from Debian (installed with apt-get when missing, so as root), like runc and
# iptables in tools/node/packages.sh. No release binary is downloaded from anywhere: Go, the Go
# module proxy and apt-get are all it needs.
#
# Idempotent: rebuilt only when an input changes (go.mod, go.sum, tools.go, this script, the
# shared common.sh, the Go version); a stamp file records them.
#
# Environment: MAMORI_NETPOL_BIN   output directory (default <repo>/.cache/netpol/bin)
#              SOURCE_DATE_EPOCH   fixes the stamped build date (reproducible builds)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
out="${MAMORI_NETPOL_BIN:-${repo}/.cache/netpol/bin}"
router_pkg=github.com/cloudnativelabs/kube-router/v2

if ! command -v ipset >/dev/null; then
  if [[ $(id -u) != 0 ]]; then
    echo "netpol: ipset missing; install it (apt-get install ipset) or run as root" >&2
    exit 1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q ipset
fi

# shellcheck source=tools/controlplane/common.sh
source "${repo}/tools/controlplane/common.sh"
begin_build "${out}"

cd "${here}"
stamp="$(input_stamp go.mod go.sum tools.go build.sh "${repo}/tools/controlplane/common.sh")"
if is_current "${stamp}" "${out}" kube-router; then
  echo "netpol: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

router_version="$(go list -m -f '{{.Version}}' "${router_pkg}")"
build_date="$(date -u ${SOURCE_DATE_EPOCH:+--date=@${SOURCE_DATE_EPOCH}} +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w -X ${router_pkg}/pkg/version.Version=${router_version}"
ldflags+=" -X ${router_pkg}/pkg/version.BuildDate=${build_date}"

echo "netpol: building kube-router ${router_version} into ${out}"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
go build -trimpath -ldflags "${ldflags}" -o "${staging}/kube-router" "${router_pkg}/cmd/kube-router"
# The version check: the binary must report the pin it was built from.
"${staging}/kube-router" --version 2>&1 | grep -qF "version ${router_version}," || {
  echo "netpol: built kube-router does not report ${router_version}" >&2
  "${staging}/kube-router" --version >&2
  exit 1
}
install_built "${staging}" "${out}" kube-router
echo "${stamp}" >"${out}/.stamp"
print_elapsed netpol "${started}"
"${out}/kube-router" --version
ipset --version
