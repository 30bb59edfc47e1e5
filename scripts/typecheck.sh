#!/usr/bin/env bash
# mypy, strict on the whole installed package. handlers/ and tui/ install as
# swarmop.handlers and swarmop.tui through setuptools' package-dir mapping,
# which mypy cannot follow, so check a copy laid out the way it installs.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=.cache/typecheck
rm -rf "$tree"
mkdir -p "$tree"
cp -r swarmop "$tree/swarmop"
cp -r handlers "$tree/swarmop/handlers"
cp -r tui "$tree/swarmop/tui"
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
cd "$tree"
../../.venv/bin/mypy --config-file ../../pyproject.toml --cache-dir ../mypy-cache -p swarmop
