#!/usr/bin/env bash
# `make image`: build the Dockerfile with buildah (no Docker engine) on a local stand-in for
# python:3.11-slim, and write the image as an OCI archive that the image tests read and run.
#
# Cached: the stand-in is rebuilt only when its recipe changes, the image only when an input of
# the build changes (Dockerfile, .dockerignore, what the Dockerfile copies, this directory). The
# host's pip configuration reaches the one RUN step that downloads, as build secrets only.
#
# Outputs (under .cache/image/): standin.oci.tar, mamori.oci.tar, and *.inputs (the input digests).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tools/image
out=${MAMORI_IMAGE_DIR:-.cache/image}
tag=${MAMORI_IMAGE_TAG:-localhost/mamori:dev}
buildah=(buildah --storage-driver vfs)
mkdir -p "$out"
bash "$here/packages.sh"

# One build at a time (two `make test` runs in the same tree share the outputs).
exec 9>"$out/.lock"
flock 9

digest_of() {  # digest of the named files' paths and contents
    local file
    for file in "$@"; do printf '%s\0' "$file"; sha256sum < "$file"; done | sha256sum | cut -c1-64
}

# The build context as .dockerignore leaves it: what the Dockerfile can see.
context_files() {
    find requirements pyproject.toml README.md mamori webhook operator -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort
}

step() { printf 'image: %s\n' "$*"; }
seconds() { echo "$(( $(date +%s) - $1 ))s"; }

# -- the stand-in base ---------------------------------------------------------------------------
standin_inputs=$(digest_of "$here/standin.sh" "$here/standin-python.sh" "$here/debian-sources.py")
if [[ -f $out/standin.oci.tar && $(cat "$out/standin.inputs" 2>/dev/null) == "$standin_inputs" ]]
then
    step "stand-in base is up to date"
else
    started=$(date +%s)
    step "making the stand-in for python:3.11-slim with mmdebstrap"
    rm -f "$out/standin.inputs" "$out/standin.digest"
    bash "$here/standin.sh" "$out/standin.oci.tar"
    sha256sum < "$out/standin.oci.tar" | cut -c1-64 > "$out/standin.digest"
    echo "$standin_inputs" > "$out/standin.inputs"
    step "stand-in made in $(seconds "$started")"
fi
# Named by the archive's content, not its recipe: mmdebstrap is not byte-reproducible, and an
# image left in buildah's storage by another checkout must never stand in for this archive.
[[ -s $out/standin.digest ]] || sha256sum < "$out/standin.oci.tar" | cut -c1-64 > "$out/standin.digest"
standin_digest=$(cat "$out/standin.digest")
standin_ref=localhost/mamori-python-standin:${standin_digest:0:16}
if ! "${buildah[@]}" inspect --type image "$standin_ref" >/dev/null 2>&1; then
    standin_id=$("${buildah[@]}" pull --quiet "oci-archive:$out/standin.oci.tar")
    "${buildah[@]}" tag "$standin_id" "$standin_ref"
    # Earlier stand-ins (vfs keeps a full copy of each) are not built on any more.
    "${buildah[@]}" images --noheading --format '{{.Name}}:{{.Tag}}' \
        | grep -F "${standin_ref%:*}:" | grep -vxF "$standin_ref" \
        | xargs --no-run-if-empty "${buildah[@]}" rmi --force >/dev/null || true
fi

# -- the image -----------------------------------------------------------------------------------
mapfile -t context < <(context_files)
image_inputs=$(digest_of Dockerfile .dockerignore "$here"/*.sh "$here"/*.py "${context[@]}")
image_inputs=$(printf '%s %s\n' "$image_inputs" "$standin_digest" | sha256sum | cut -c1-64)
if [[ -f $out/mamori.oci.tar && $(cat "$out/mamori.inputs" 2>/dev/null) == "$image_inputs" ]]; then
    step "$out/mamori.oci.tar is up to date"
    exit 0
fi
started=$(date +%s)
rm -f "$out/mamori.inputs"
secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT
pip=(python3 -m pip)
[[ -x .venv/bin/pip ]] && pip=(.venv/bin/pip)
mapfile -t secret_args < <(python3 "$here/pip-build-config.py" "$secrets" -- "${pip[@]}")
step "building Dockerfile with buildah on $standin_ref"
"${buildah[@]}" bud --isolation chroot --network host \
    --build-arg "PYTHON_IMAGE=$standin_ref" "${secret_args[@]}" \
    --tag "$tag" --file Dockerfile .
rm -f "$out/mamori.oci.tar"
"${buildah[@]}" push --quiet "$tag" "oci-archive:$out/mamori.oci.tar:${tag#localhost/}"
echo "$image_inputs" > "$out/mamori.inputs"
# Earlier builds' layers (vfs keeps a full copy of each) are no longer needed.
"${buildah[@]}" rmi --prune >/dev/null 2>&1 || true
step "built $tag into $out/mamori.oci.tar in $(seconds "$started")"
