#!/usr/bin/env bash
# Lay out mamori as of COMMIT in DIR, importable without installing it, so that
# `bash bench/engine/run.sh --baseline-tree DIR` times the same pods on the older engine in the
# same run (git archive only reads the repository; nothing in the work tree changes).
# Usage: bash bench/engine/baseline_tree.sh COMMIT DIR
set -euo pipefail
commit="${1:?usage: baseline_tree.sh COMMIT DIR}"
dir="${2:?usage: baseline_tree.sh COMMIT DIR}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
rm -rf "${dir}"
mkdir -p "${dir}"
git -C "${repo}" archive "${commit}" mamori webhook | tar -x -C "${dir}"
if [ -d "${dir}/webhook/mamori_webhook" ]; then
  mv "${dir}/webhook/mamori_webhook" "${dir}/mamori_webhook"
else
  # Before the webhook was its own package it was installed as mamori.webhook: lay it out so,
  # and give it the name the benchmark imports.
  mv "${dir}/webhook" "${dir}/mamori/webhook"
  ln -s mamori/webhook "${dir}/mamori_webhook"
fi
rm -rf "${dir}/webhook"
ln -s "${repo}/bench" "${dir}/bench" # the same pods and the same timing code
echo "${dir}: mamori at $(git -C "${repo}" rev-parse --short "${commit}")"
