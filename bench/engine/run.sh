#!/usr/bin/env bash
# Engine benchmark (not a test): evaluate() and the webhook's per-review path on a few pods,
# side by side with the API server's Pod Security Admission (tools/psa-bench, built from Go
# modules into .cache/psa-bench on first use). CPU-bound, one core, about a minute.
# Usage: bash bench/engine/run.sh [--repeats 7] [--json FILE] [--no-psa]
set -euo pipefail
cd "$(dirname "$0")/../.."
psa=(--psa-bin .cache/psa-bench/psa-bench)
if [[ " $* " != *" --no-psa "* ]]; then
  if command -v go >/dev/null; then
    bash tools/psa-bench/build.sh
  else
    echo "bench/engine: 'go' is not on PATH: timing mamori only" >&2
    psa=()
  fi
fi
exec .venv/bin/python -m bench.engine.bench "${psa[@]}" "$@"
