#!/usr/bin/env bash
# Build the supply-chain tools for mamori's registry tests (`make supplychain`): a real OCI
# registry (distribution's cmd/registry), cosign, notation, oras and crane, all from the one
# go.mod in this directory (`tool` directives), so the five share one dependency graph. Only the
# tests run them, on loopback (tests/integration/registry_support.py); they are never shipped in
# mamori's image or chart. No release binary is downloaded from anywhere: Go and the Go module
# proxy are all it needs.
#
# Idempotent: rebuilt only when an input changes (go.mod, go.sum, this script, the shared
# common.sh, the Go version); a stamp file records them.
#
# Environment: MAMORI_SUPPLYCHAIN_BIN  output directory (default <repo>/.cache/supplychain/bin)
#              GOFLAGS                 kept and extended (e.g. GOFLAGS=-p=1 on a busy machine)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
out="${MAMORI_SUPPLYCHAIN_BIN:-${repo}/.cache/supplychain/bin}"
tools=(registry cosign notation oras crane)

# shellcheck source=tools/controlplane/common.sh
source "${repo}/tools/controlplane/common.sh"
begin_build "${out}"

cd "${here}"
stamp="$(input_stamp go.mod go.sum build.sh "${repo}/tools/controlplane/common.sh")"
if is_current "${stamp}" "${out}" "${tools[@]}"; then
  echo "supplychain: up to date in ${out} (${stamp:0:12})"
  exit 0
fi

started=$(date +%s)
export CGO_ENABLED=0
# -mod=readonly: the build must use exactly the pins in go.mod/go.sum, never rewrite them.
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-mod=readonly -buildvcs=false"

version_of() { go list -m -f '{{.Version}}' "$1"; }
registry_version="$(version_of github.com/distribution/distribution/v3)"
cosign_version="$(version_of github.com/sigstore/cosign/v3)"
notation_version="$(version_of github.com/notaryproject/notation)"
oras_version="$(version_of oras.land/oras)"
crane_version="$(version_of github.com/google/go-containerregistry)"

echo "supplychain: building registry ${registry_version}, cosign ${cosign_version}," \
  "notation ${notation_version}, oras ${oras_version}, crane ${crane_version} into ${out}"
staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT
# `go build ... tool` builds every `tool` directive of go.mod, named after its last path element.
go build -trimpath -ldflags "-s -w" -o "${staging}/" tool

# report_of NAME: the one line of NAME's version output that names its version. The output is
# read whole (sed -n / grep read to the end), so no writer dies of SIGPIPE under pipefail.
report_of() {
  case "$1" in
    registry) "${staging}/registry" --version 2>&1 | sed -n '1s/^[^ ]* //p' ;;
    cosign) "${staging}/cosign" version 2>&1 | grep -F GitVersion: || true ;;
    notation) "${staging}/notation" version 2>&1 | grep -F Version: || true ;;
    oras) "${staging}/oras" version 2>&1 | sed -n 1p ;;
    crane) "${staging}/crane" version 2>&1 | sed -n 1p ;;
  esac
}
# The version check: each binary must report the pin it was built from.
declare -A want=(
  [registry]="${registry_version}"
  [cosign]="${cosign_version}"
  [notation]="${notation_version}"
  [oras]="${oras_version#v}"
  [crane]="${crane_version}"
)
declare -A reported
for tool in "${tools[@]}"; do
  reported[${tool}]="$(report_of "${tool}")"
  if [[ "${reported[${tool}]}" != *"${want[${tool}]}"* ]]; then
    echo "supplychain: built ${tool} does not report ${want[${tool}]}: '${reported[${tool}]}'" >&2
    exit 1
  fi
done

install_built "${staging}" "${out}" "${tools[@]}"
echo "${stamp}" >"${out}/.stamp"
print_elapsed supplychain "${started}"
for tool in "${tools[@]}"; do
  printf '%-9s %s\n' "${tool}" "${reported[${tool}]}"
done
