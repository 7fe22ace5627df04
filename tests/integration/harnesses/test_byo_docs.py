"""docs/bring-your-own-harness.md works as written: its agent, its TOML spec and its Python class
are extracted from the page and run, each through ``check harness`` (scripted engine, real proxy,
local runtime); the spec also through ``agentgym rollout --harness <path>`` and ``agentgym check
harness <path>`` on the command line."""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentgym import registries
from agentgym.harness import load_harness
from agentgym.harness_check import check_harness
from agentgym.runtime import get_backend

pytestmark = pytest.mark.timeout(300)

DOC = Path(__file__).resolve().parents[3] / "docs" / "bring-your-own-harness.md"


@pytest.fixture
def doc_files(tmp_path: Path) -> Path:
    """Every ``<!-- file: NAME -->`` block of the page, written to ``tmp_path``."""
    text = DOC.read_text()
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    assert [name for name, _ in blocks] == ["agent.py", "my-agent.toml", "my_harness.py"]
    for name, body in blocks:
        (tmp_path / name).write_text(body)
    return tmp_path


def test_the_toml_example_checks_ok(doc_files: Path) -> None:
    harness = load_harness(str(doc_files / "my-agent.toml"))
    report = asyncio.run(check_harness(harness, get_backend("local"), out_dir=doc_files / "run"))
    assert report.ok and report.one_segment and report.reward == 1.0, report
    assert (report.dialects, report.streaming, report.calls) == (("openai",), False, 2)


def test_the_python_example_registers_and_checks_ok(doc_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(doc_files))
    try:
        importlib.import_module("my_harness")  # registers acme/my-agent-py-v0
        harness = load_harness("acme/my-agent-py-v0")
        report = asyncio.run(check_harness(harness, get_backend("local"), out_dir=doc_files / "run"))
        assert report.ok and report.one_segment and report.reward == 1.0, report
    finally:
        registries.harnesses.unregister("acme/my-agent-py-v0")
        sys.modules.pop("my_harness", None)


def test_the_command_line_takes_a_spec_path(doc_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentgym import engines
    from agentgym.cli import app
    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.harness import CHECK_REPLIES
    from agentgym.models.tiny import train_tokenizer

    def scripted(model: str, **kw: Any) -> ScriptedEngine:
        return ScriptedEngine(train_tokenizer(), lambda ids, n: CHECK_REPLIES[n % 2])

    monkeypatch.setattr(engines, "load_engine", scripted)
    spec = str(doc_files / "my-agent.toml")
    runner = CliRunner()
    out = runner.invoke(app, ["rollout", "--env", "terminal/hello-file-v0", "--harness", spec, "--samples", "1",
                              "--runtime", "local", "--out", str(doc_files / "rollout")])
    assert out.exit_code == 0, out.output
    assert re.search(r"completed: 1 episode\(s\) in [\d.]+s \(local\)", out.output), out.output
    assert "failures:" not in out.output  # the one episode ran without a typed failure
    out = runner.invoke(app, ["check", "harness", spec, "--runtime", "local", "--out", str(doc_files / "check")])
    assert out.exit_code == 0, out.output
    assert re.search(r"dialect\s+openai", out.output) and re.search(r"one segment\s+yes", out.output)
    assert out.output.rstrip().endswith("OK")
