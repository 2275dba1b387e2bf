#!/usr/bin/env bash
# mamori check against kube-score, side by side: build kube-score from the Go module pinned in
# tools/kube-score/ (into .cache/kube-score/), then time both over generated manifests.
#
#   bash bench/check/run.sh                         # 1, 1,000, 10,000 objects, 5 runs each
#   bash bench/check/run.sh --counts 1000 --runs 3  # any bench.py flags pass through
#   bash bench/check/run.sh --startup 25            # start-up: one manifest, with the floors
#   bash bench/check/installed.sh DEST              # mamori as installed from the wheel, to time
#   bash bench/check/run.sh --startup 25 --mamori editable=.venv/bin/mamori \
#        --mamori installed=DEST/bin/mamori          # ... next to the editable install
#
# Needs Go >= 1.26 and the project's virtualenv (make venv). Nothing is downloaded but Go modules.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"

bash "${repo}/tools/kube-score/build.sh" >&2
cd "${repo}"
exec .venv/bin/python -m bench.check.bench \
  --kube-score "${repo}/.cache/kube-score/bin/kube-score" "$@"
