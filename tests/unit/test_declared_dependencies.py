"""Every third-party module the package imports comes from a distribution pyproject.toml declares, so a fresh
`pip install modelyard` has it instead of relying on something else pulling it in."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "modelyard"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return {canonical(re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0]) for d in dependencies}


def imported() -> dict[str, set[str]]:
    """Top-level third-party module -> the files importing it (at module level or inside functions)."""
    found: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "modelyard":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_dependency():
    distributions = importlib.metadata.packages_distributions()
    wanted = declared()
    missing = {
        module: sorted(files)[:3]
        for module, files in imported().items()
        if not {canonical(d) for d in distributions.get(module, [])} & wanted
    }
    assert not missing, f"imported but not declared in pyproject.toml dependencies: {missing}"
