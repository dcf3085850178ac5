"""The layering the README promises: the domain library never imports Dagster or pipelines."""

from __future__ import annotations

import ast
from pathlib import Path

import nasmr

FORBIDDEN = {"dagster", "pipelines"}


def _imported_roots(path: Path) -> set[str]:
    """Top-level packages a module imports anywhere (module level or inside functions)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_nasmr_never_imports_dagster_or_pipelines() -> None:
    package = Path(nasmr.__file__).parent
    modules = sorted(package.rglob("*.py"))
    assert len(modules) > 20
    offenders = {
        str(m.relative_to(package)): sorted(_imported_roots(m) & FORBIDDEN) for m in modules
    }
    assert {m: f for m, f in offenders.items() if f} == {}
