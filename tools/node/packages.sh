#!/usr/bin/env bash
# The Debian packages a local node needs, installed when missing: runc (containerd's runtime),
# iptables (the CNI bridge and portmap plugins, kube-proxy), busybox-static (the test images'
# contents) and umoci (writes those images as OCI archives). Needs root (apt-get).
set -euo pipefail
declare -A package_of=([runc]=runc [iptables]=iptables [busybox]=busybox-static [umoci]=umoci)
missing=()
for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${package_of[$tool]}")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
    echo "node: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 1
fi
started=$(date +%s)
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
echo "node: installed ${missing[*]} in $(( $(date +%s) - started ))s"
