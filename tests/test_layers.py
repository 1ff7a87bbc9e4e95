"""Dependencies point down: verifiers < data < envs < models < evals < trainers.

A static check over every module of the packages (imports inside functions count too: a lazy
import is still a dependency). The library never imports a layer above it, as nanochat's
engine never imports the scripts that use it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["verifiers", "data", "envs", "models", "evals", "trainers"]   # each may import those before it


def imported_packages(source: str, package: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in `source`, a module of `package`; relative
    imports resolve to `package` itself."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, package if node.level else (node.module or "").split(".")[0]))
    return found


def upward_imports(source: str, package: str, where: str) -> list[str]:
    """One line per import of a layer above `package`."""
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    return [f"{where}:{line} imports {name} ({package} may import only {', '.join(sorted(allowed))})"
            for line, name in imported_packages(source, package) if name in LAYERS and name not in allowed]


@pytest.mark.parametrize("source, expected", [
    ("from trainers.config import RunConfig", ["x.py:1 imports trainers"]),
    ("import trainers.config as c", ["x.py:1 imports trainers"]),
    ("def f():\n    from trainers import run\n    return run", ["x.py:2 imports trainers"]),  # lazy: still a dependency
    ("import os, trainers.run", ["x.py:1 imports trainers"]),
    ("from models.sampler import Sample\nfrom envs import get_env\nfrom . import stats", []),   # down or own
    ("import trainers_extra\nfrom evalsx import y", []),     # names that merely start like a layer
    ("s = 'from trainers import x'", []),                    # text is not an import
])
def test_the_check_finds_upward_imports_and_only_those(source, expected):
    found = upward_imports(source, "evals", "x.py")
    assert [f.split(" (")[0] for f in found] == expected


def test_no_module_imports_a_layer_above_it():
    problems = []
    for package in LAYERS:
        modules = sorted((ROOT / package).rglob("*.py"))
        assert modules, f"no modules under {package}/"
        for path in modules:
            problems += upward_imports(path.read_text(encoding="utf-8"), package, str(path.relative_to(ROOT)))
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_every_package_is_in_a_layer():
    """A new top-level package must take a place in LAYERS (and in pyproject's package list)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages == set(LAYERS)
    include = (ROOT / "pyproject.toml").read_text()
    assert all(f'"{name}*"' in include for name in LAYERS)
