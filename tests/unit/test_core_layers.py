"""Imports only go down: cli -> public API -> reactor -> planning -> clients."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "swarmop"

# Layer of each core module prefix (lower number = lower layer).
LAYERS = [
    ("swarmop.cli", 5),
    ("swarmop.testing", 4),
    ("swarmop.on", 4),
    ("swarmop.__init__", 4),
    ("swarmop.reactor", 3),
    ("swarmop.planning", 2),
    ("swarmop.desired", 2),
    ("swarmop.status", 2),
    ("swarmop.metrics", 2),
    ("swarmop.filters", 2),
    ("swarmop.views", 2),
    ("swarmop.registry", 2),
    ("swarmop.errors", 1),
    ("swarmop.settings", 1),
    ("swarmop.clients", 1),
]
CORE = (
    "swarmop.reactor",
    "swarmop.planning",
    "swarmop.clients",
    "swarmop.status",
    "swarmop.metrics",
    "swarmop.filters",
    "swarmop.views",
    "swarmop.registry",
    "swarmop.errors",
    "swarmop.settings",
    "swarmop.on",
    "swarmop.testing",
)


def layer_of(module: str) -> int | None:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def core_modules() -> list[tuple[str, Path]]:
    found = []
    for path in ROOT.rglob("*.py"):
        name = "swarmop." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        if name.startswith(CORE) or name == "swarmop":
            found.append((name, path))
    return found


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize(("module", "path"), core_modules(), ids=str)
def test_imports_only_go_down(module: str, path: Path) -> None:
    own = layer_of("swarmop.__init__" if module == "swarmop" else module)
    assert own is not None
    for imported in imports(path):
        assert not imported.startswith(("textual", "swarmop.tui", "swarmop.handlers")), imported
        other = layer_of(imported)
        if other is None or imported == module:
            continue
        same_package = imported.split(".")[:2] == module.split(".")[:2]
        assert other <= own or same_package, f"{module} (layer {own}) imports {imported}"


def test_importing_swarmop_does_not_load_textual() -> None:
    code = "import sys, swarmop, swarmop.testing, swarmop.cli.run; print('textual' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
# What a user's own handler module may import: the public API and the pure
# libraries it builds on. The reactor, the clients, leader election, the CLI and
# the sandbox are the framework's inside.
FRAMEWORK_INSIDE = (
    "swarmop.reactor",
    "swarmop.clients",
    "swarmop.ha",
    "swarmop.cli",
    "swarmop.sandbox",
    "swarmop.testing",
)


@pytest.mark.parametrize("path", sorted(HANDLERS.glob("*.py")), ids=lambda path: path.name)
def test_built_in_handlers_use_only_the_public_api(path: Path) -> None:
    inside = [name for name in imports(path) if name.startswith(FRAMEWORK_INSIDE)]
    assert not inside, f"handlers/{path.name} imports {inside}"
