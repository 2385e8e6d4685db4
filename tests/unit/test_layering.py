"""The package's layers: every import inside `modelyard` points at its own layer or one below, so there is no
import circle and a new task never needs a change in the layers above it (DESIGN.md, "Layering").

Imports inside functions count too: a late import still ties the layers together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. A module belongs to the longest prefix listed; the command line (`cli`, `commands`) sits on top.
LAYERS: list[tuple[str, ...]] = [
    (
        "modelyard.errors",
        "modelyard.cores",
        "modelyard.fsutil",
        "modelyard.home",
        "modelyard.precision",
        "modelyard.model_thread",
        "modelyard.cancellation",
        "modelyard.state",
    ),
    ("modelyard.config",),
    (
        "modelyard.data",
        "modelyard.bundle",
        "modelyard.metrics",
        "modelyard.protocols",
        "modelyard.predict_io",
        "modelyard.privacy",
    ),
    ("modelyard.models", "modelyard.runtimes", "modelyard.drift"),
    ("modelyard.training", "modelyard.generation", "modelyard.retrieval"),
    ("modelyard.learners",),
    ("modelyard.tasks",),
    ("modelyard.tracking",),
    ("modelyard.loader",),
    ("modelyard.evaluation", "modelyard.export", "modelyard.synthetic", "modelyard.batch"),
    ("modelyard.pipeline",),
    ("modelyard.monitoring", "modelyard.tuning", "modelyard.export.distill", "modelyard.federated"),
    ("modelyard.serving",),
    ("modelyard.api",),
    ("modelyard", "modelyard.cli", "modelyard.commands", "modelyard.__main__"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted((SRC / "modelyard").rglob("*.py"))}


def layer(module: str) -> int | None:
    """The layer of the longest listed prefix of `module` (the bare package name matches only itself)."""
    best, found = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "modelyard" and module.startswith(prefix + "."))
            if inside and len(prefix) > best:
                best, found = len(prefix), index
    return found


def imports(module: str) -> set[str]:
    """Every modelyard module `module` imports (`from modelyard import x` counts as modelyard.x when x is one)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("modelyard"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("modelyard"))
    return found


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if layer(m) is None]
    assert unplaced == [], "add these modules to a layer in LAYERS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_or_sideways(module):
    upward = sorted(t for t in imports(module) if t in MODULES and layer(t) > layer(module))
    assert upward == [], f"{module} (layer {layer(module)}) imports from higher layers: {upward}"


def test_there_is_no_import_circle_between_packages():
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph.setdefault(package(module), set()).update(
            package(t) for t in imports(module) if t in MODULES and package(t) != package(module)
        )
    graph.pop("modelyard", None)  # the package's own __init__ is the public face: it may name anything

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen)):
                return True
        return False

    circles = sorted(p for p in graph if reaches(p, p, set()))
    assert circles == []
