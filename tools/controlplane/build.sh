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

# One build at a time: a second caller waits, then finds the stamp current and returns.
exec 9>"${out}/.build.lock"
if command -v flock >/dev/null; then
  flock 9
fi

cd "${here}"
stamp_file="${out}/.stamp"
stamp="$(
  {
    cat go.mod go.sum build.sh tools.go cmd/etcd/main.go
    go env GOVERSION GOOS GOARCH
  } | sha256sum | cut -d' ' -f1
)"

up_to_date=true
for name in "${binaries[@]}"; do
  [[ -x "${out}/${name}" ]] || up_to_date=false
done
if [[ "${up_to_date}" == true && -f "${stamp_file}" && "$(cat "${stamp_file}")" == "${stamp}" ]]; then
  echo "controlplane: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

kube_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
if [[ ! "${kube_version}" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
  echo "build.sh: unexpected k8s.io/kubernetes version '${kube_version}' in go.mod" >&2
  exit 2
fi
kube_major="${BASH_REMATCH[1]}"
kube_minor="${BASH_REMATCH[2]}"
build_date="$(date -u ${SOURCE_DATE_EPOCH:+--date=@${SOURCE_DATE_EPOCH}} +%Y-%m-%dT%H:%M:%SZ)"

# Same variables Kubernetes' own build stamps (hack/lib/version.sh), in both the server-side and
# the client-side version packages, so `kubectl version` reports the pin on both ends.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${kube_version}"
  ldflags+=" -X ${pkg}.gitMajor=${kube_major}"
  ldflags+=" -X ${pkg}.gitMinor=${kube_minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean"
  ldflags+=" -X ${pkg}.buildDate=${build_date}"
done

echo "controlplane: building etcd, kube-apiserver, kubectl ${kube_version} into ${out}"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
# One invocation for all three, so the shared packages compile once and in parallel.
go build -trimpath -ldflags "${ldflags}" -o "${staging}/" "${packages[@]}"

# Replace each binary atomically: a running test keeps its old inode, nobody sees half a file.
for name in "${binaries[@]}"; do
  mv -f "${staging}/${name}" "${out}/${name}"
done
echo "${stamp}" >"${stamp_file}"

elapsed=$(($(date +%s) - started))
printf 'controlplane: built in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
"${out}/kube-apiserver" --version
"${out}/etcd" --version | head -n1
