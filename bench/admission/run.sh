#!/usr/bin/env bash
# Admission benchmark (not a test): reviews/s saturated and latency at a fixed rate over TLS,
# for `mamori webhook` and a no-op floor on the same server stack. Loopback only, bounded in time
# (about 90 s). Needs Debian's wrk and hey; installs them when run as root with apt-get.
# Usage: bash bench/admission/run.sh [--duration 15] [--rate 500] [--json FILE] ...
#   [--policy FILE] [--review FILE] [--webhook-arg '--registry-ca-file FILE'] ...: the webhook
#   with another policy, review or flags;
#   --signatures: the webhook with and without spec.imageSignatures on the loopback registry
#   (needs `make supplychain`; ~8 min at the defaults), see bench/admission/served_signatures.py;
#   --paced-only [--pacer go|python|both]: only the even rate, floors and webhook (paced_only.py).
# The even-rate client is the Go pacer in bench/admission/pacer/ (standard library only), built
# here into .cache/bench-admission/pacer when its sources changed; without go, paced.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
pacer_sources=bench/admission/pacer
pacer_binary=.cache/bench-admission/pacer
if command -v go >/dev/null; then
  if [ ! -x "$pacer_binary" ] || [ -n "$(find "$pacer_sources" -newer "$pacer_binary")" ]; then
    mkdir -p "$(dirname "$pacer_binary")"
    # touch: go build leaves an up-to-date binary as it was, older than an edited source
    (cd "$pacer_sources" && GOTOOLCHAIN=local go build -trimpath -o "$OLDPWD/$pacer_binary" .) \
      && touch "$pacer_binary" || echo "bench/admission: the Go pacer did not build; the even rate uses paced.py" >&2
  fi
fi
if ! command -v wrk >/dev/null || ! command -v hey >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk hey >/dev/null
  else
    echo "bench/admission: wrk and hey are needed: sudo apt-get install -y wrk hey" >&2
    exit 2
  fi
fi
exec .venv/bin/python -m bench.admission.bench "$@"
