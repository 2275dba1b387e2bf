# Shared by the Go build scripts under tools/ (controlplane, node, coredns, kube-score,
# psa-bench; sourced, not run): the build lock, the input stamp and the version stamps
# Kubernetes' own build sets, so that every binary built from the k8s.io/kubernetes pin in
# tools/controlplane/go.mod reports that pin.

# begin_build DIR: Go on PATH, DIR made, the build lock taken (what every build script does
# first).
begin_build() {
  command -v go >/dev/null || { echo "build.sh: 'go' is not on PATH (Go >= 1.26 needed)" >&2; exit 2; }
  mkdir -p "$1"
  take_build_lock "$1"
}

# take_build_lock DIR: one build at a time; a second caller waits, then finds the stamp current.
take_build_lock() {
  exec 9>"$1/.build.lock"
  if command -v flock >/dev/null; then
    flock 9
  fi
}

# input_stamp FILE...: a digest of the files' contents and the Go toolchain that builds them.
input_stamp() {
  {
    cat "$@"
    go env GOVERSION GOOS GOARCH
  } | sha256sum | cut -d' ' -f1
}

# is_current STAMP DIR NAME...: true when every NAME is in DIR and DIR/.stamp holds STAMP.
is_current() {
  local stamp="$1" dir="$2" name
  shift 2
  for name in "$@"; do
    [[ -x "${dir}/${name}" ]] || return 1
  done
  [[ -f "${dir}/.stamp" && "$(cat "${dir}/.stamp")" == "${stamp}" ]]
}

# kube_ldflags: the -ldflags for a k8s.io/kubernetes command; run inside tools/controlplane.
# Same variables as Kubernetes' hack/lib/version.sh, in both the server-side and the client-side
# version packages, so `kubectl version` and `kubelet --version` report the pin.
kube_ldflags() {
  local version major minor build_date pkg flags="-s -w"
  version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
  if [[ ! "${version}" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
    echo "build: unexpected k8s.io/kubernetes version '${version}' in go.mod" >&2
    return 2
  fi
  major="${BASH_REMATCH[1]}"
  minor="${BASH_REMATCH[2]}"
  build_date="$(date -u ${SOURCE_DATE_EPOCH:+--date=@${SOURCE_DATE_EPOCH}} +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${version}"
    flags+=" -X ${pkg}.gitMajor=${major}"
    flags+=" -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitTreeState=clean"
    flags+=" -X ${pkg}.buildDate=${build_date}"
  done
  printf '%s\n' "${flags}"
}

# install_built STAGING DIR NAME...: move each binary into DIR atomically (a running process
# keeps its old inode; nobody sees half a file).
install_built() {
  local staging="$1" dir="$2" name
  shift 2
  for name in "$@"; do
    mv -f "${staging}/${name}" "${dir}/${name}"
  done
}

# print_elapsed WHAT STARTED: "WHAT: built in XmYYs".
print_elapsed() {
  local elapsed=$(($(date +%s) - $2))
  printf '%s: built in %dm%02ds\n' "$1" $((elapsed / 60)) $((elapsed % 60))
}
