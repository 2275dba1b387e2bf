#!/usr/bin/env bash
# Lay out mamori as an install from its wheel would be, to time start-up as users get it: the
# project's .venv is an editable install, whose import hook (loaded by site at every start, with
# pathlib and re) costs each process ~10 ms that an install from the wheel or the image does not.
#
#   bash bench/check/installed.sh DEST            # this checkout's mamori/
#   bash bench/check/installed.sh DEST SOURCE     # SOURCE: a tree holding mamori/ (git archive)
#
# DEST becomes a virtualenv without pip (as the image's /opt/mamori) holding a copy of mamori/,
# compiled, and PyYAML copied from the project's .venv; DEST/bin/mamori is the console script.
# Nothing is downloaded.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
dest="$1"
source="${2:-${repo}}"
python="${repo}/.venv/bin/python"

rm -rf "${dest}"
"${python}" -m venv --without-pip "${dest}"
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_path("purelib"))'; }
site="$(site_of "${dest}/bin/python")"
project_site="$(site_of "${python}")"
cp -r "${source}/mamori" "${site}/"
find "${site}/mamori" -name __pycache__ -prune -exec rm -rf {} +
cp -r "${project_site}/yaml" "${project_site}/_yaml" "${site}/"
"${dest}/bin/python" -m compileall -q "${site}"
cat >"${dest}/bin/mamori" <<EOF
#!${dest}/bin/python
import sys
from mamori.cli import main
if __name__ == '__main__':
    sys.exit(main())
EOF
chmod +x "${dest}/bin/mamori"
echo "${dest}/bin/mamori"
