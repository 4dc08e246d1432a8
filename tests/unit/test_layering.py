"""The layers stay layers: apimachinery is importable with nothing heavy, and the
API server, the client and the CLI import only what sits below them.

Each import runs in a fresh interpreter, because inside the test process the
heavy libraries are loaded already and ``sys.modules`` would prove nothing.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "apimachinery"
HEAVY = ("httpx", "fastapi", "starlette", "sqlalchemy", "dns", "uvicorn", "pydantic")
CORE_MODULES = sorted(
    "apimachinery" if p.name == "__init__.py" else f"apimachinery.{p.stem}"
    for p in CORE.glob("*.py"))

# Which top-level packages each package may import (besides the standard
# library and third-party libraries). Kubernetes' shape: apimachinery under
# everything; the server and the clients never import each other; the CLI
# builds on the client.
ALLOWED = {
    "apimachinery": set(),
    "componentbase": {"apimachinery"},
    "apiserver": {"apimachinery", "componentbase"},
    "client": {"apimachinery"},
    "mpctl": {"apimachinery", "client", "componentbase"},
    "controllers": {"apimachinery", "client", "componentbase"},
    "dnsd": {"apimachinery", "client", "componentbase"},
    "nodeagent": {"apimachinery", "client", "componentbase"},
}


def test_core_modules_are_found():
    assert {"apimachinery.names", "apimachinery.labels", "apimachinery.kinds"} <= set(CORE_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_nothing_heavy(module):
    code = (f"import sys, json, {module}\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True)
    assert json.loads(out.stdout) == [], f"{module} pulled in heavy libraries"


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package):
    ours = set(ALLOWED)
    wrong = {}
    for path in sorted((REPO / package).rglob("*.py")):
        bad = (_imported_packages(path) & ours) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(REPO))] = sorted(bad)
    assert wrong == {}, f"{package} imports layers it must not"
