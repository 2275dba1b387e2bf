#!/usr/bin/env bash
# mypy --strict over the whole `mamori` import namespace. webhook/ and operator/ are mapped
# into it by pyproject's package-dir, which mypy cannot follow, so build the same namespace
# from symlinks in .cache/typecheck and check it as one package.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tree="${repo}/.cache/typecheck"
rm -rf "${tree}"
mkdir -p "${tree}/mamori"
for entry in "${repo}"/mamori/*; do
  ln -s "${entry}" "${tree}/mamori/"
done
ln -s "${repo}/webhook" "${tree}/mamori/webhook"
ln -s "${repo}/operator" "${tree}/mamori/operator"
cd "${tree}"
exec "${repo}/.venv/bin/mypy" --config-file "${repo}/pyproject.toml" --cache-dir "${repo}/.mypy_cache" -p mamori
