#!/usr/bin/env bash
# Build kube-score from the Go module pinned in this directory: the Go baseline that
# bench/check/ times `mamori check` against. Like tools/helm/build.sh: Go and the Go module proxy
# are all it needs; no release binary is downloaded from anywhere.
#
# Idempotent: rebuilt only when the inputs change (go.mod, go.sum, tools.go, this script, the Go
# version); a stamp file records them. The version stamp is the one kube-score's release build
# sets, so `kube-score version` names the pin.
#
# Environment: MAMORI_KUBE_SCORE_BIN  output directory (default <repo>/.cache/kube-score/bin)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
out="${MAMORI_KUBE_SCORE_BIN:-${repo}/.cache/kube-score/bin}"

# shellcheck source=tools/controlplane/common.sh
source "${repo}/tools/controlplane/common.sh"
begin_build "${out}"

cd "${here}"
stamp="$(input_stamp go.mod go.sum build.sh tools.go "${repo}/tools/controlplane/common.sh")"
if is_current "${stamp}" "${out}" kube-score; then
  echo "kube-score: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"

version="$(go list -m -f '{{.Version}}' github.com/zegl/kube-score)"
ldflags="-s -w -X main.version=${version#v} -X main.commit=module -X main.date=unknown"

echo "kube-score: building ${version} into ${out}"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
go build -trimpath -ldflags "${ldflags}" -o "${staging}/kube-score" \
  github.com/zegl/kube-score/cmd/kube-score
install_built "${staging}" "${out}" kube-score
echo "${stamp}" >"${out}/.stamp"
print_elapsed kube-score "${started}"
"${out}/kube-score" version
