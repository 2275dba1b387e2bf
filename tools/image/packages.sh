#!/usr/bin/env bash
# The Debian packages `make image` and the image tests need, installed when missing: buildah
# builds the Dockerfile, mmdebstrap makes the stand-in base, runc runs the image, umoci unpacks it.
# Needs root (apt-get); a fresh machine of the project's kind has it.
set -euo pipefail
missing=()
for tool in buildah mmdebstrap runc umoci; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
    echo "image: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 1
fi
started=$(date +%s)
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
echo "image: installed ${missing[*]} in $(( $(date +%s) - started ))s"
