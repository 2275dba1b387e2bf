#!/usr/bin/env bash
# Build helm from the Go module pinned in this directory, for mamori's chart tests (`make helm`).
# Like tools/controlplane/build.sh: Go and the Go module proxy are all it needs; no release
# binary is downloaded from anywhere.
#
# Idempotent: rebuilt only when the inputs change (go.mod, go.sum, tools.go, this script, the Go
# version); a stamp file records them. The version stamps are the ones helm's own Makefile sets,
# so `helm version` names the pin and `helm lint`/`helm template` assume the Kubernetes minor
# version of the client-go that helm was built with (not the 1.20 fallback).
#
# Environment: MAMORI_HELM_BIN  output directory (default <repo>/.cache/helm/bin)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
out="${MAMORI_HELM_BIN:-${repo}/.cache/helm/bin}"

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
    cat go.mod go.sum build.sh tools.go
    go env GOVERSION GOOS GOARCH
  } | sha256sum | cut -d' ' -f1
)"
if [[ -x "${out}/helm" && -f "${stamp_file}" && "$(cat "${stamp_file}")" == "${stamp}" ]]; then
  echo "helm: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

helm_version="$(go list -m -f '{{.Version}}' helm.sh/helm/v3)"
client_go="$(go list -m -f '{{.Version}}' k8s.io/client-go)"
if [[ ! "${client_go}" =~ ^v0\.([0-9]+)\.[0-9]+$ ]]; then
  echo "build.sh: unexpected k8s.io/client-go version '${client_go}' in go.mod" >&2
  exit 2
fi
kube_minor="${BASH_REMATCH[1]}" # client-go v0.N.x goes with Kubernetes v1.N

ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${helm_version}"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${kube_minor}"
done

echo "helm: building ${helm_version} into ${out}"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
go build -trimpath -ldflags "${ldflags}" -o "${staging}/helm" helm.sh/helm/v3/cmd/helm
mv -f "${staging}/helm" "${out}/helm" # atomic: a running test keeps its old inode
echo "${stamp}" >"${stamp_file}"

elapsed=$(($(date +%s) - started))
printf 'helm: built in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
"${out}/helm" version
