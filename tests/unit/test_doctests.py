"""Every ``>>>`` example in the shipped code runs: one test per module that has examples.

Modules are imported by their installed names (``agentgym.trainers.batch``, not
``trainers.batch``), which ``pytest --doctest-modules`` over the source tree would get wrong for
the ``package-dir`` packages. Examples that need Docker or a network say ``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("agentgym", "agentgym.envs", "agentgym.harnesses", "agentgym.trainers")
"""Walked separately: the last three install from their own directories (``package-dir``)."""
SKIP = ("agentgym.envs.terminal",)
"""Task assets that run inside task containers, not agentgym code."""


def modules_with_examples() -> list[str]:
    names = set(PACKAGES)
    for package in PACKAGES:
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            if not info.name.startswith(SKIP) and not info.name.endswith("__main__"):
                names.add(info.name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    out = []
    for name in sorted(names):
        module = importlib.import_module(name)
        if any(t.examples for t in finder.find(module, name)):
            out.append(name)
    return out


MODULES = modules_with_examples()


def test_examples_are_found_across_the_layers() -> None:
    layers = {m.split(".")[1] if m.count(".") else "agentgym" for m in MODULES}
    assert {"envs", "harnesses", "trainers", "registries", "env", "observation"} <= layers, layers
    assert len(MODULES) >= 30


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = 0
    for test in finder.find(module, name):
        runner.run(test, out=lambda s: print(s, end=""))
        ran += sum(1 for e in test.examples if not e.options.get(doctest.SKIP))
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name} (see stdout)"
    assert ran > 0, f"{name}: every example is skipped"
