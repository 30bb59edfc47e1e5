#!/usr/bin/env bash
# Creates .venv with swarmop installed (editable) and its dev tools. Quick when
# nothing changed: pip runs again only when pyproject.toml differs from the
# copy recorded at the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.installed-pyproject.toml
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! cmp -s pyproject.toml "$stamp"; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  cp pyproject.toml "$stamp"
fi
echo "setup: .venv ready ($(.venv/bin/swarmop --version))"
