#!/usr/bin/env bash
# A local stand-in for python:3.11-slim, which cannot be pulled here: Debian bookworm (whose
# python3 is 3.11) made by mmdebstrap from the Debian mirror apt uses on this machine, laid out
# like the official image where the Dockerfile can tell: python, python3 and pip on PATH in
# /usr/local/bin, pip, setuptools and wheel installed into /usr/local (so `python -m pip
# uninstall` removes them), no EXTERNALLY-MANAGED marker, docs and man pages left out as in
# Debian's slim images, the same ENV and CMD.
#
# usage: standin.sh ARCHIVE   writes an OCI archive of the stand-in base to ARCHIVE
set -euo pipefail
archive=$1
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 "$here/debian-sources.py" "$suite" > "$work/debian.sources"

mmdebstrap --variant=minbase --format=tar --quiet \
    --include=python3,python3-venv,python3-pip-whl,python3-setuptools-whl,python3-wheel-whl \
    --include=ca-certificates,netbase,tzdata \
    --customize-hook="sh '$here/standin-python.sh' \"\$1\"" \
    "$suite" "$work/rootfs.tar" "$work/debian.sources"

# Import the tarball as a one-layer image with python:3.11-slim's configuration.
container=$(buildah --storage-driver vfs from scratch)
trap 'buildah --storage-driver vfs rm "$container" >/dev/null; rm -rf "$work"' EXIT
buildah --storage-driver vfs add "$container" "$work/rootfs.tar" /
buildah --storage-driver vfs config \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --env PYTHON_VERSION="$(tar -xOf "$work/rootfs.tar" ./var/lib/dpkg/status \
        | awk '/^Package: python3.11-minimal$/ {p=1} p && /^Version:/ {print $2; exit}')" \
    --cmd python3 \
    --label org.opencontainers.image.description="stand-in for python:3.11-slim (mmdebstrap)" \
    "$container"
mkdir -p "$(dirname "$archive")"
rm -f "$archive"
buildah --storage-driver vfs commit --quiet --format oci "$container" "oci-archive:$archive"
