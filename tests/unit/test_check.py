"""``agentgym check env``: the report on tiny Harbor tasks with deliberately broken verifiers and
oracles, on the local runtime (no Docker), through the function and through the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentgym.check import EnvCheck, TaskCheck, check_env, format_failure, format_line, format_summary
from agentgym.cli import app
from agentgym.envs.harbor import HarborEnv
from agentgym.errors import EnvError
from agentgym.runtime.local import LocalBackend

LOCAL_TOML = 'version = "1.0"\n[metadata]\ncategory = "demo"\n[metadata.agentgym]\nlocal = true\n[verifier]\ntimeout_sec = 20\n'
WRITES = 'R="${AGENTGYM_ROOT:-}/logs/verifier"; mkdir -p "$R"\n'
GOOD_TEST = WRITES + 'if [ -f "${AGENTGYM_ROOT:-}/app/done" ]; then echo 1 > "$R/reward.txt"; else echo 0 > "$R/reward.txt"; fi\n'
GOOD_SOLVE = 'touch "${AGENTGYM_ROOT:-}/app/done"\n'


def make_task(root: Path, name: str, *, test_sh: str = GOOD_TEST, solve_sh: str = GOOD_SOLVE,
              toml: str = LOCAL_TOML) -> Path:
    d = root / name
    for sub in ("environment", "tests", "solution"):
        (d / sub).mkdir(parents=True)
    (d / "instruction.md").write_text("Create /app/done.\n")
    (d / "task.toml").write_text(toml)
    (d / "environment" / "Dockerfile").write_text("FROM agentgym/base:bookworm\nWORKDIR /app\n")
    (d / "tests" / "test.sh").write_text(test_sh)
    (d / "solution" / "solve.sh").write_text(solve_sh)
    return d


def run_check(suite: Path, tmp_path: Path, task_ids: list[str] | None = None) -> EnvCheck:
    backend = LocalBackend(tmp_root=str(tmp_path))
    return asyncio.run(check_env(HarborEnv(suite, env_id="demo-suite"), backend, task_ids=task_ids))


def only(report: EnvCheck) -> TaskCheck:
    assert len(report.results) == 1
    return report.results[0]


def test_a_sound_task_passes_both_checks(tmp_path: Path) -> None:
    make_task(tmp_path / "suite", "sound")
    report = run_check(tmp_path / "suite", tmp_path)
    check = only(report)
    assert (check.nothing, check.oracle, check.problems, check.ok) == (0.0, 1.0, (), True)
    assert report.ok and report.failed == []
    assert check.build_s is None  # the local runtime builds no image
    assert format_line(check) == "sound       -  nothing=0 ok    oracle=1 ok"
    assert format_summary(report).startswith("demo-suite: 1 task(s) on local: 1 ok in ")


def test_a_verifier_that_always_passes_fails_the_nothing_check(tmp_path: Path) -> None:
    make_task(tmp_path / "suite", "lenient", test_sh=WRITES + 'echo "checked nothing"; echo 1 > "$R/reward.txt"\n')
    check = only(run_check(tmp_path / "suite", tmp_path))
    assert (check.nothing, check.oracle) == (1.0, 1.0)
    assert check.failed and check.problems == (
        "nothing: scores 1, expected 0: the verifier passes an untouched task",)
    assert "checked nothing" in check.output
    assert "nothing=0 FAIL  oracle=1 ok" in format_line(check)


def test_a_verifier_that_writes_no_reward_is_reported_with_its_output_tail(tmp_path: Path) -> None:
    broken = WRITES + 'echo "Traceback: test_outputs.py line 3: boom" >&2; exit 3\n'
    make_task(tmp_path / "suite", "crashing", test_sh=broken)
    check = only(run_check(tmp_path / "suite", tmp_path))
    assert (check.nothing, check.oracle) == (None, None)
    assert len(check.problems) == 2
    assert all("the verifier did not score the episode" in p and "wrote neither" in p for p in check.problems)
    assert "boom" in format_failure(check)
    assert "nothing=0 FAIL  oracle=1 FAIL" in format_line(check)


def test_an_oracle_that_fails_is_named_with_its_output(tmp_path: Path) -> None:
    make_task(tmp_path / "suite", "bad-oracle", solve_sh='echo "cannot find the config" >&2; exit 4\n')
    check = only(run_check(tmp_path / "suite", tmp_path))
    assert check.nothing == 0.0 and check.oracle == 0.0
    assert check.problems == ("oracle: the oracle (reference solution) exited 4",)
    assert "cannot find the config" in check.output


def test_a_verifier_that_cannot_score_the_oracle_1(tmp_path: Path) -> None:
    strict = WRITES + 'echo "FAIL: wants /app/other"; [ -f "${AGENTGYM_ROOT:-}/app/other" ] && echo 1 > "$R/reward.txt" || echo 0 > "$R/reward.txt"\n'
    make_task(tmp_path / "suite", "strict", test_sh=strict)
    check = only(run_check(tmp_path / "suite", tmp_path))
    assert check.oracle == 0.0 and check.problems == (
        "oracle: scores 0, expected 1: the verifier does not pass the reference solution",)
    assert "FAIL: wants /app/other" in check.output


def test_tasks_that_cannot_run_here_are_skipped_not_failed(tmp_path: Path) -> None:
    make_task(tmp_path / "suite", "rooty", toml='[metadata.agentgym]\nlocal = false\nlocal_reason = "needs root"\n')
    make_task(tmp_path / "suite", "sound")
    report = run_check(tmp_path / "suite", tmp_path)
    rooty, sound = report.results
    assert rooty.skipped and "needs root" in rooty.skipped and not rooty.failed and not rooty.ok
    assert sound.ok and report.ok
    assert "1 skipped" in format_summary(report)
    only_skipped = run_check(tmp_path / "suite", tmp_path, task_ids=["rooty"])
    assert not only_skipped.ok  # nothing was checked


def test_task_selection_keeps_order_and_names_unknown_ids(tmp_path: Path) -> None:
    for name in ("a", "b"):
        make_task(tmp_path / "suite", name)
    assert [r.task_id for r in run_check(tmp_path / "suite", tmp_path, task_ids=["b", "a"]).results] == ["b", "a"]
    with pytest.raises(EnvError, match="no task 'zzz'"):
        run_check(tmp_path / "suite", tmp_path, task_ids=["zzz"])


def test_cli_exits_nonzero_and_names_the_broken_task(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    make_task(suite, "sound")
    make_task(suite, "broken", test_sh=WRITES + 'echo "verifier exploded" >&2; exit 1\n')
    result = CliRunner().invoke(app, ["check", "env", str(suite), "--runtime", "local"])
    out = result.output
    assert result.exit_code == 1, out
    assert "checking " in out and "2 task(s) on the local runtime" in out
    broken_line = next(line for line in out.splitlines() if line.startswith("broken "))
    assert "nothing=0 FAIL" in broken_line and "oracle=1 FAIL" in broken_line
    assert "did not score" in broken_line
    assert "--- broken: 2 problem(s)" in out and "verifier exploded" in out
    assert "1 ok, 1 FAILED (broken)" in out


def test_cli_checks_one_task_directory_and_a_subset(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    make_task(suite, "sound")
    make_task(suite, "broken", test_sh="exit 1\n")
    single = CliRunner().invoke(app, ["check", "env", str(suite / "sound"), "--runtime", "local"])
    assert single.exit_code == 0, single.output
    assert "1 ok" in single.output
    subset = CliRunner().invoke(app, ["check", "env", str(suite), "--tasks", "sound", "--runtime", "local"])
    assert subset.exit_code == 0, subset.output
    assert "broken" not in subset.output


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(app, ["check", "env", str(tmp_path / "empty"), "--runtime", "local"])
    assert empty.exit_code == 2 and "is not a task collection agentgym reads" in empty.output
    missing = CliRunner().invoke(app, ["check", "env", str(tmp_path / "nowhere"), "--runtime", "local"])
    assert missing.exit_code == 2 and "no such file or directory" in missing.output
    typo = CliRunner().invoke(app, ["check", "env", "terminal/hello-fil-v0", "--runtime", "local"])
    assert typo.exit_code == 2 and "Did you mean 'terminal/hello-file-v0'" in typo.output
    unknown = CliRunner().invoke(app, ["check", "env", "terminal/hello-file-v0", "--tasks", "nope",
                                       "--runtime", "local"])
    assert unknown.exit_code == 2 and "no task 'nope'" in unknown.output


def test_format_line_of_an_image_that_does_not_build() -> None:
    check = TaskCheck("t", build_s=2.25, problems=("the image does not build",), output="Step 2/3: RUN false",
                      built=False)
    assert format_line(check, 4) == "t       2.2s  nothing=0 -     oracle=1 -     the image does not build"
    assert "Step 2/3: RUN false" in format_failure(check)
