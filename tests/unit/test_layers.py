"""The layer rule (ARCHITECTURE.md): the core (``agentgym/``) never imports ``envs/``,
``harnesses/`` or ``trainers/``; those three import the core and never each other; only the top
of the stack (the CLI and the quickstart) may import everything.

The outer packages install as ``agentgym.envs`` / ``agentgym.harnesses`` / ``agentgym.trainers``
through setuptools' ``package-dir``, so import-graph tools see one package and miss these
edges: this test reads every module's imports with ``ast`` instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTER = {"envs": "agentgym.envs", "harnesses": "agentgym.harnesses", "trainers": "agentgym.trainers"}
TOP = {"agentgym/cli.py", "agentgym/quickstart.py"}
"""The top of the stack: may import anything."""
ALLOWED: set[tuple[str, str]] = set()
"""(module file, imported package) edges tolerated for now. Empty: keep it so."""
TASK_ASSETS = ("envs/terminal", "envs/swe/repos", "envs/swe/instances")
"""Code that runs inside task containers (task files, the SWE repositories), not agentgym's."""


def is_task_asset(path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == a or rel.startswith(a + "/") for a in TASK_ASSETS)


def layer_of_module(name: str) -> str:
    """``core`` or the outer package a dotted module name belongs to."""
    for layer, package in OUTER.items():
        if name == package or name.startswith(package + "."):
            return layer
    return "core" if name == "agentgym" or name.startswith("agentgym.") else "external"


def imports(path: Path, package: str = "agentgym") -> list[str]:
    """Absolute module names imported by a file (``from x import y`` counts ``x`` and ``x.y``);
    relative imports resolve against ``package``, the file's own package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.append(base)
            out.extend(f"{base}.{alias.name}" for alias in node.names)
    return out


def package_of(layer: str, path: Path) -> str:
    """The dotted package a source file belongs to once installed."""
    root = ROOT / ("agentgym" if layer == "core" else layer)
    prefix = "agentgym" if layer == "core" else OUTER[layer]
    return ".".join((prefix, *path.parent.relative_to(root).parts))


def source_files() -> list[tuple[str, Path]]:
    files = [("core", p) for p in (ROOT / "agentgym").rglob("*.py")]
    for layer in OUTER:
        files += [(layer, p) for p in (ROOT / layer).rglob("*.py") if not is_task_asset(p)]
    return files


def violations() -> list[str]:
    bad = []
    for layer, path in source_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in TOP:
            continue
        for name in imports(path, package_of(layer, path)):
            target = layer_of_module(name)
            if target in ("external", "core", layer):
                continue
            if (rel, OUTER[target]) in ALLOWED:
                continue
            bad.append(f"{rel} ({layer}) imports {name} ({target})")
    return sorted(set(bad))


def test_the_core_and_the_outer_packages_keep_their_layers() -> None:
    assert violations() == []


def test_the_checker_sees_an_edge_through_package_dir(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("from agentgym.trainers.batch import StepBatch\nimport agentgym.envs.harbor\n"
                      "from agentgym import registries\nfrom ..envs import harbor\n")
    assert [layer_of_module(n) for n in imports(sample, "agentgym.harnesses")] == [
        "trainers", "trainers", "envs", "core", "core", "envs", "envs"]


@pytest.mark.parametrize("layer", sorted(OUTER))
def test_every_outer_package_is_installed(layer: str) -> None:
    """Every directory with an ``__init__.py`` is in pyproject's explicit package list."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    for init in (ROOT / layer).rglob("__init__.py"):
        if is_task_asset(init):
            continue
        rel = init.parent.relative_to(ROOT / layer)
        name = ".".join((OUTER[layer], *rel.parts))
        assert name in packages, f"{name} ({init.parent}) is not in pyproject's [tool.setuptools] packages"
    for init in (ROOT / "agentgym").rglob("__init__.py"):
        name = ".".join(init.parent.relative_to(ROOT).parts)
        assert name in packages, f"{name} is not in pyproject's [tool.setuptools] packages"
