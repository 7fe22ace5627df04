"""The SWE suite without Docker: the built-in instances follow the SWE-bench schema and match
their sources, users' files load (SWE-bench, SWE-Gym and SWE-smith rows) or fail with a clear
EnvError, and grading is swebench's own parser and resolution status on real verifier logs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentgym import registries
from agentgym.envs import SWE_INSTANCES
from agentgym.envs.swe import BUILTIN_INSTANCES, SWEEnv, load_instances
from agentgym.envs.swe.generate import INSTANCES_DIR, build_all, instance_row
from agentgym.envs.swe.grading import grade, make_test_spec
from agentgym.envs.swe.instance import SWEInstance
from agentgym.envs.swe.repos import builtin_repos
from agentgym.errors import EnvError
from agentgym.runtime.local import LocalBackend

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "swe"
ROWS = [json.loads(line) for line in BUILTIN_INSTANCES.read_text().splitlines()]
SWEBENCH_FIELDS = ["repo", "instance_id", "base_commit", "patch", "test_patch", "problem_statement", "hints_text",
                   "created_at", "version", "FAIL_TO_PASS", "PASS_TO_PASS", "environment_setup_commit"]
NODE_ID = re.compile(r"^tests/test_\w+\.py::test_\w+(\[[^\]\s]+\])?$")


def diff_files(patch: str) -> list[str]:
    return re.findall(r"^diff --git a/\S+ b/(\S+)$", patch, re.M)


# -- the built-in suite --------------------------------------------------------------------------
def test_the_builtin_suite_has_at_least_eight_instances_over_three_repositories() -> None:
    instances = load_instances(BUILTIN_INSTANCES)
    assert SWE_INSTANCES == BUILTIN_INSTANCES
    assert len(instances) >= 8
    repos = {inst.repo for inst in instances}
    assert len(repos) >= 3 and repos <= set(builtin_repos())
    assert all(sum(inst.repo == r for inst in instances) >= 2 for r in repos)


@pytest.mark.parametrize("row", ROWS, ids=[r["instance_id"] for r in ROWS])
def test_every_builtin_row_is_a_swebench_instance(row: dict[str, Any]) -> None:
    from swebench.types import SWEbenchInstance

    assert list(row) == SWEBENCH_FIELDS
    assert set(row) == set(SWEbenchInstance.__annotations__)  # swebench's own schema, exactly
    assert all(isinstance(v, str) for v in row.values())
    owner, name = row["repo"].split("/")
    assert re.fullmatch(rf"{owner}__{name}-\d+", row["instance_id"])
    assert re.fullmatch(r"[0-9a-f]{40}", row["base_commit"]) and re.fullmatch(r"[0-9a-f]{40}",
                                                                            row["environment_setup_commit"])
    datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    fail_to_pass, pass_to_pass = json.loads(row["FAIL_TO_PASS"]), json.loads(row["PASS_TO_PASS"])
    assert fail_to_pass and pass_to_pass and not set(fail_to_pass) & set(pass_to_pass)
    assert all(NODE_ID.match(t) for t in fail_to_pass + pass_to_pass), fail_to_pass + pass_to_pass
    assert diff_files(row["patch"]) and not any(f.startswith("tests/") for f in diff_files(row["patch"]))
    assert diff_files(row["test_patch"]) and all(f.startswith("tests/") for f in diff_files(row["test_patch"]))
    assert row["problem_statement"].strip() and "\n\n" in row["problem_statement"]  # a title, then the body
    for test in fail_to_pass:  # the problem statement describes the bug, it does not name hidden tests
        assert test.split("::")[1].split("[")[0] not in row["problem_statement"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if shutil.which("git") is None:
        pytest.fail("git is needed to rebuild the SWE repositories", pytrace=False)
    return build_all(tmp_path_factory.mktemp("swe-repos"))


def test_the_rows_are_what_their_sources_generate(built: Any) -> None:
    """``instances.jsonl`` is up to date with ``instances/`` and ``repos/`` (the test lists
    come from running the tests: ``python -m agentgym.envs.swe.generate --check``)."""
    sources = sorted(d for d in INSTANCES_DIR.iterdir() if (d / "instance.json").is_file())
    assert [d.name for d in sources] == sorted(r["instance_id"] for r in ROWS)
    by_id = {r["instance_id"]: r for r in ROWS}
    for source in sources:
        fresh = instance_row(source, built, validate=False)
        committed = {k: v for k, v in by_id[source.name].items() if k not in ("FAIL_TO_PASS", "PASS_TO_PASS")}
        assert {k: v for k, v in fresh.items() if k not in ("FAIL_TO_PASS", "PASS_TO_PASS")} == committed


def git_ok(repo: Path, *args: str, stdin: str = "") -> bool:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, text=True, capture_output=True).returncode == 0


@pytest.mark.parametrize("row", ROWS, ids=[r["instance_id"] for r in ROWS])
def test_patches_apply_at_the_base_commit_and_no_commit_holds_the_fix(built: Any, row: dict[str, Any]) -> None:
    repo = built[row["repo"]]
    assert row["base_commit"] in repo.commits.values()
    for commit in repo.commits.values():
        assert git_ok(repo.path, "checkout", "-q", "-f", commit)
        if commit == row["base_commit"]:
            assert git_ok(repo.path, "apply", "--check", "-", stdin=row["patch"])
            assert git_ok(repo.path, "apply", "--check", "-", stdin=row["test_patch"])
        assert not git_ok(repo.path, "apply", "--check", "-R", "-", stdin=row["patch"]), f"{commit} holds the fix"


def test_suite_and_instances_are_registered() -> None:
    suite = registries.envs.make("swe/basic-v0")
    assert sorted(t.id for t in suite.tasks()) == sorted(r["instance_id"] for r in ROWS)
    one = registries.envs.make("swe/agentgym__textkit-7-v0")
    assert [t.id for t in one.tasks()] == ["agentgym__textkit-7"] and one.id == "swe/agentgym__textkit-7-v0"


def test_tasks_run_in_one_image_per_repository_at_testbed() -> None:
    env = SWEEnv()
    tasks = env.tasks()
    images = {env.instance(t).repo: t.image for t in tasks}
    assert len(set(images.values())) == len(images) == 3
    for task in tasks:
        inst = env.instance(task)
        assert task.image == images[inst.repo] and task.workdir == "/testbed" and not task.metadata["unsupported"]
        assert (Path(task.dockerfile_dir or "") / "Dockerfile").is_file()
        assert task.instruction.startswith(inst.problem_statement.strip())
        assert inst.base_commit[:12] in task.instruction
        for hidden in (*inst.fail_to_pass, inst.patch, inst.test_patch):
            assert hidden not in task.instruction and hidden not in json.dumps(dict(task.metadata))
    assert SWEEnv().tasks()[0].image == tasks[0].image  # content-addressed: the same tag again


def test_the_local_runtime_is_refused_with_its_reason() -> None:
    env = SWEEnv()
    assert "image" in (env.unsupported(env.tasks()[0], LocalBackend()) or "")


# -- users' files ----------------------------------------------------------------------------------
def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_swe_gym_style_file_loads_the_same_way(tmp_path: Path) -> None:
    row = dict(ROWS[0], instance_id="gym__copy-1", FAIL_TO_PASS=json.loads(ROWS[0]["FAIL_TO_PASS"]),
               PASS_TO_PASS=json.loads(ROWS[0]["PASS_TO_PASS"]), meta={"has_test_patch": True})
    path = tmp_path / "gym.json"
    path.write_text(json.dumps([row]))  # a .json list, test lists as lists, an extra column
    env = SWEEnv(path=path)
    with pytest.warns(UserWarning, match=r"meta \(1 rows\)"):
        (task,) = env.tasks()
    inst = env.instance(task)
    assert inst.fail_to_pass == tuple(json.loads(ROWS[0]["FAIL_TO_PASS"]))
    assert inst.extra == {"meta": {"has_test_patch": True}}
    assert task.image == SWEEnv().task(ROWS[0]["instance_id"]).image and env.id == "swe"
    assert env.unsupported(task, LocalBackend()) is not None and task.metadata["ignored_fields"] == ["meta"]
    assert inst.row()["FAIL_TO_PASS"] == ROWS[0]["FAIL_TO_PASS"]  # back to SWE-bench's encoding


def test_a_swe_smith_style_row_loads_and_says_why_it_cannot_run(tmp_path: Path) -> None:
    row = {"instance_id": "pandas-dev__pandas.95280573.lm_rewrite__abc", "repo": "swesmith/pandas-dev__pandas.95280573",
           "patch": "diff --git a/x b/x\n", "FAIL_TO_PASS": ["pandas/tests/test_x.py::test_y"], "PASS_TO_PASS": [],
           "image_name": "jyangballin/swesmith.x86_64.pandas-dev_1776_pandas.95280573",
           "problem_statement": "Something is off."}
    env = SWEEnv(path=write_jsonl(tmp_path / "smith.jsonl", [row]))
    with warnings.catch_warnings(record=True):
        (task,) = env.tasks()
    reason = env.unsupported(task, LocalBackend()) or ""
    assert "no base_commit" in reason and "image_name" not in reason and "jyangballin" in reason
    assert task.image is None


def test_an_unknown_repository_asks_for_a_local_clone(tmp_path: Path) -> None:
    row = dict(ROWS[0], instance_id="acme__widgets-1", repo="acme/widgets")
    env = SWEEnv(path=write_jsonl(tmp_path / "acme.jsonl", [row]))
    reason = env.unsupported(env.tasks()[0], LocalBackend()) or ""
    assert "acme/widgets" in reason and "repos=" in reason


@pytest.mark.parametrize("content, message", [
    ("{not json}\n", r"bad\.jsonl:1: invalid JSON line"),
    ("", "holds no instances"),
    ('[{"instance_id": "x"}]', r"missing required field\(s\) repo, problem_statement, FAIL_TO_PASS, PASS_TO_PASS"),
    ("[1]", "must be a JSON object"),
    ('{"instance_id": "a__b-1", "repo": "a/b", "problem_statement": "p", "FAIL_TO_PASS": "t::x", '
     '"PASS_TO_PASS": []}\n', "FAIL_TO_PASS is a string but not a JSON list"),
    ('{"instance_id": "a__b-1", "repo": "a/b", "problem_statement": "p", "FAIL_TO_PASS": [1], '
     '"PASS_TO_PASS": []}\n', "FAIL_TO_PASS must be a list of test ids"),
    ('{"instance_id": "a__b-1", "repo": "a/b", "problem_statement": "p", "FAIL_TO_PASS": [], '
     '"PASS_TO_PASS": []}\n', "FAIL_TO_PASS is empty"),
    ('{"instance_id": "a__b-1", "repo": "a/b", "problem_statement": "p", "FAIL_TO_PASS": ["t::x"], '
     '"PASS_TO_PASS": [], "base_commit": "main"}\n', "base_commit 'main' is not a commit hash"),
    ('{"instance_id": "a__b-1", "repo": "a/b", "problem_statement": "p", "FAIL_TO_PASS": ["t::x"], '
     '"PASS_TO_PASS": [], "patch": 3}\n', "patch must be a string"),
])
def test_a_malformed_file_is_a_clear_env_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / ("bad.json" if content.startswith("[") else "bad.jsonl")
    path.write_text(content)
    with pytest.raises(EnvError, match=message):
        SWEEnv(path=path).tasks()


def test_duplicate_ids_unknown_selections_and_missing_files(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [ROWS[0], ROWS[0]])
    with pytest.raises(EnvError, match=r"dup\.jsonl:2: instance_id .* already appears at .*dup\.jsonl:1"):
        SWEEnv(path=path).tasks()
    with pytest.raises(EnvError, match="no instance 'nope'"):
        SWEEnv(instance_ids=["nope"]).tasks()
    with pytest.raises(EnvError, match="cannot read SWE instances"):
        SWEEnv(path=tmp_path / "missing.jsonl").tasks()


# -- grading ---------------------------------------------------------------------------------------
def spans_9() -> SWEInstance:
    return SWEEnv().instances()["agentgym__spans-9"]


def test_the_eval_script_is_swebench_shaped() -> None:
    inst = spans_9()
    script = make_test_spec(inst, "img").eval_script
    assert script.startswith("#!/bin/bash\nset -uxo pipefail\n")
    assert f"git checkout {inst.base_commit} tests/test_ops.py" in script
    assert "git apply -v - <<'EOF_114329324912'" in script and inst.test_patch.rstrip("\n") in script
    start, end = script.index(">>>>> Start Test Output"), script.index(">>>>> End Test Output")
    assert "python3 -m pytest" in script[start:end] and "tests/test_ops.py" in script[start:end]
    assert "SWEBENCH_TEST_EXIT_CODE=$?" in script  # added by swebench's make_test_spec


def test_a_test_patch_that_adds_files_removes_them_first() -> None:
    new = ("diff --git a/tests/test_new.py b/tests/test_new.py\nnew file mode 100644\nindex 0000000..e69de29\n"
           "--- /dev/null\n+++ b/tests/test_new.py\n@@ -0,0 +1 @@\n+def test_x(): pass\n")
    inst = SWEInstance(instance_id="a__b-1", repo="a/b", problem_statement="p", base_commit="0" * 40,
                       fail_to_pass=("tests/test_new.py::test_x",), pass_to_pass=(), test_patch=new)
    assert inst.test_patch_new_files == ("tests/test_new.py",)
    assert "rm -rf tests/test_new.py" in make_test_spec(inst, "img").eval_script


@pytest.fixture
def parser_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on swebench's pytest parser as swebench's grading looks it up (PARSER_REGISTRY)."""
    from swebench.harness import grading

    calls: list[str] = []
    real = grading.PARSER_REGISTRY["parse_log_pytest"]

    def spy(log: str, test_spec: Any) -> dict[str, str]:
        calls.append(log)
        return real(log, test_spec)

    monkeypatch.setitem(grading.PARSER_REGISTRY, "parse_log_pytest", spy)
    return calls


def test_grading_is_swebench_parser_and_resolution_on_a_real_log(parser_calls: list[str]) -> None:
    inst = spans_9()
    spec = make_test_spec(inst, "img")
    nothing = grade(spec, (FIXTURES / "agentgym__spans-9.nothing.log").read_text(), "")
    assert parser_calls and "short test summary info" in parser_calls[0]
    assert (nothing.resolved, nothing.resolution, nothing.log_found) == (False, "RESOLVED_NO", True)
    assert sorted(nothing.tests_status["FAIL_TO_PASS"]["failure"]) == sorted(inst.fail_to_pass)
    assert sorted(nothing.tests_status["PASS_TO_PASS"]["success"]) == sorted(inst.pass_to_pass)
    assert {nothing.tests[t] for t in inst.fail_to_pass} == {"FAILED"}
    gold = grade(spec, (FIXTURES / "agentgym__spans-9.gold.log").read_text(), inst.patch)
    assert (gold.resolved, gold.resolution) == (True, "RESOLVED_FULL")
    assert set(gold.tests) == {*inst.fail_to_pass, *inst.pass_to_pass} and set(gold.tests.values()) == {"PASSED"}


def test_partial_fixes_patch_failures_and_forged_logs_are_not_resolved() -> None:
    inst = spans_9()
    spec = make_test_spec(inst, "img")
    gold_log = (FIXTURES / "agentgym__spans-9.gold.log").read_text()
    first = inst.fail_to_pass[0]
    partial = grade(spec, gold_log.replace(f"PASSED {first}\n", f"FAILED {first} - AssertionError\n")
                    .replace("Test Exit Code: 0", "Test Exit Code: 1"), "x")
    assert (partial.resolved, partial.resolution) == (False, "RESOLVED_PARTIAL")
    failed_apply = grade(spec, ">>>>> Patch Apply Failed\n", "x")
    assert (failed_apply.resolved, failed_apply.log_found, failed_apply.patch_applied) == (False, False, False)
    assert failed_apply.tests_status["FAIL_TO_PASS"]["failure"] == list(inst.fail_to_pass)
    # PASSED lines the patch printed itself, while pytest exited 1: swebench's exit-code check
    nothing_log = (FIXTURES / "agentgym__spans-9.nothing.log").read_text()
    forged = nothing_log.replace("+ SWEBENCH_TEST_EXIT_CODE=1",
                                 "".join(f"PASSED {t}\n" for t in inst.fail_to_pass) + "+ SWEBENCH_TEST_EXIT_CODE=1")
    forged_grade = grade(spec, forged, "x")
    assert (forged_grade.resolved, forged_grade.log_found, forged_grade.patch_applied) == (False, False, True)
    timed_out = grade(spec, nothing_log + "\n>>>>> Tests Timed Out\n", "x")
    assert (timed_out.resolved, timed_out.log_found) == (False, False)


def test_an_unknown_log_parser_is_refused() -> None:
    inst = SWEInstance(instance_id="a__b-1", repo="a/b", problem_statement="p", base_commit="0" * 40,
                       fail_to_pass=("t::x",), pass_to_pass=(), log_parser="parse_log_nope", eval_script="true")
    with pytest.raises(EnvError, match="not one of swebench's parsers"):
        make_test_spec(inst, "img")
    with pytest.raises(EnvError, match="must carry its own eval_script"):
        make_test_spec(SWEInstance(instance_id="a__b-1", repo="a/b", problem_statement="p", base_commit="0" * 40,
                                   fail_to_pass=("t::x",), pass_to_pass=(), log_parser="parse_log_django"), "img")
