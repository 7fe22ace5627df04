"""agentgym's Harbor and Terminal-Bench 1 readers against the packages' own code.

``harbor`` and ``terminal-bench`` cannot be dependencies (Python >= 3.12, dozens of packages),
so equivalence is proven on fixtures: ``tests/fixtures/upstream/goldens.json`` holds what
Harbor's ``TaskConfig`` (harbor 0.26.0), Terminal-Bench's ``Task`` model and its
``PytestParser`` (terminal-bench 0.2.18) made of every fixture task and log
(``tests/fixtures/upstream/regenerate.py`` rebuilds it from the two wheels). Each test reads the
same fixture with agentgym and compares field by field; the schema tests pin agentgym's field
tables to the models' fields, so a newer schema fails here until its fields are classified.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agentgym.envs.harbor.task import SCHEMA, UNSUPPORTED, load_harbor_task, resolve_env_templates
from agentgym.envs.harbor.tb1 import TB1_FIELDS, load_tb1_task, parse_pytest_summary

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
UPSTREAM = FIXTURES / "upstream"
GOLDENS: dict[str, Any] = json.loads((UPSTREAM / "goldens.json").read_text())


def test_the_goldens_name_the_upstream_versions() -> None:
    assert GOLDENS["sources"] == ["harbor-0.26.0-py3-none-any.whl", "terminal_bench-0.2.18-py3-none-any.whl"]


@pytest.mark.parametrize("section", sorted(s for s in GOLDENS["harbor_fields"] if s != "steps"))
def test_every_harbor_field_is_classified(section: str) -> None:
    """A field Harbor adds is either honoured, reported or unsupported: never silently ignored."""
    assert sorted(SCHEMA["" if section == "" else section]) == sorted(GOLDENS["harbor_fields"][section])


def test_every_terminal_bench_field_is_classified() -> None:
    assert sorted(TB1_FIELDS) == GOLDENS["terminal_bench_fields"]


def _task_dir(toml: Path, tmp_path: Path) -> Path:
    """The fixture's task directory, completed (instruction, Dockerfile) where Harbor's templates
    ship only a task.toml."""
    if (toml.parent / "instruction.md").is_file() or (toml.parent / "steps").is_dir():
        return toml.parent
    d = tmp_path / toml.parent.name
    shutil.copytree(toml.parent, d)
    (d / "instruction.md").write_text("Do it.\n")
    (d / "environment").mkdir(exist_ok=True)
    (d / "environment" / "Dockerfile").write_text("FROM ubuntu:24.04\nWORKDIR /srv\n")
    return d


def _differs(value: Any, default: Any) -> bool:
    return value != default and value not in (None, [], {})


@pytest.mark.parametrize("rel", sorted(GOLDENS["harbor"]))
def test_harbor_task_toml_reads_as_harbor_reads_it(rel: str, tmp_path: Path) -> None:
    golden = GOLDENS["harbor"][rel]
    assert "ok" in golden, f"Harbor refuses {rel}: {golden}"
    cfg = golden["ok"]
    task = load_harbor_task(_task_dir(FIXTURES / rel, tmp_path))
    md = task.metadata
    env, agent, verifier = cfg["environment"], cfg["agent"], cfg["verifier"]
    assert task.limits.timeout_s == (agent["timeout_sec"] or 600.0)
    assert md["verifier_timeout_s"] == verifier["timeout_sec"]
    assert task.limits.memory == f"{env['memory_mb'] or 2048}m"
    assert task.limits.cpus == float(env["cpus"] or 1)
    assert dict(task.env_vars) == resolve_env_templates(env["env"])
    assert md["verifier_env"] == resolve_env_templates(verifier["env"])
    assert md["solution_env"] == resolve_env_templates(cfg["solution"]["env"])
    assert task.network == {"public": "host", "no-network": "none", "allowlist": "none"}[env["network_mode"]]
    if env["docker_image"]:
        assert task.image == env["docker_image"] and task.dockerfile_dir is None
    if env["workdir"]:
        assert task.workdir == env["workdir"]
    assert md["build_timeout_s"] == env["build_timeout_sec"] and md["storage_mb"] == env["storage_mb"]
    package = cfg["task"] or {}
    assert md["name"] == package.get("name", task.id)
    assert md["description"] == package.get("description", "")
    assert md["tags"] == list(cfg["metadata"].get("tags") or package.get("keywords") or [])
    assert {k: v for k, v in md["harbor"].get("metadata", {}).items() if k != "agentgym"} == \
        {k: v for k, v in cfg["metadata"].items() if k != "agentgym"}
    assert md["source"] == cfg["source"]
    assert md["steps"] == [s["name"] for s in cfg["steps"] or []]
    if env["healthcheck"]:
        assert md["healthcheck"]["command"] == env["healthcheck"]["command"]

    # Whatever is set to a non-default value is honoured, reported in the notes, or blocks the task.
    defaults = GOLDENS["harbor_defaults"]
    reported = " ".join(md["notes"]) + " " + md["unsupported"]
    for section, fields in SCHEMA.items():
        values = cfg if section == "" else (cfg.get(section) or {})
        base = defaults if section == "" else (defaults.get(section) or {})
        for name, status in fields.items():
            if name not in values or not _differs(values[name], base.get(name)) or status == "honoured":
                continue
            where = f"{section}.{name}" if section else name
            assert name in reported or where in reported, f"{where} = {values[name]!r} is neither honoured nor reported"
            if status == UNSUPPORTED:
                assert md["unsupported"], f"{where} should make the task unsupported"


@pytest.mark.parametrize("rel", sorted(GOLDENS["terminal_bench"]))
def test_terminal_bench_task_yaml_reads_as_terminal_bench_reads_it(rel: str, tmp_path: Path) -> None:
    golden = GOLDENS["terminal_bench"][rel]
    d = (FIXTURES / rel).parent
    if not (d / "Dockerfile").is_file():
        d = tmp_path / d.name
        shutil.copytree((FIXTURES / rel).parent, d)
        (d / "Dockerfile").write_text("FROM ubuntu:24.04\nWORKDIR /app\n")
        (d / "run-tests.sh").write_text("true\n")
    task = load_tb1_task(d)
    md = task.metadata
    assert task.instruction == golden["instruction"]
    assert md["difficulty"] == golden["difficulty"] and md["category"] == golden["category"]
    assert md["tags"] == golden["tags"] and md["author"] == golden["author_name"]
    assert task.limits.timeout_s == golden["max_agent_timeout_sec"]
    assert md["verifier_timeout_s"] == golden["max_test_timeout_sec"]
    assert (golden["parser_name"] == "pytest") == (not md["unsupported"])
    assert golden["run_tests_in_same_shell"] == any("run_tests_in_same_shell" in n for n in md["notes"])


@pytest.mark.parametrize("name", sorted(GOLDENS["pytest_parser"]))
def test_pytest_summaries_parse_as_terminal_bench_parses_them(name: str) -> None:
    golden = GOLDENS["pytest_parser"][name]
    text = (UPSTREAM / "pytest-logs" / name).read_text()
    if "error" in golden:
        with pytest.raises(ValueError, match="short test summary"):
            parse_pytest_summary(text)
    else:
        assert parse_pytest_summary(text) == golden["ok"]
