"""Grading a SWE instance the way SWE-bench does, with the ``swebench`` package's own code.

The verifier (:func:`verifier_script`) runs in the sealed sandbox
(:func:`agentgym.verify.run_verifier`) and does what swebench's harness does in a fresh
container:

1. takes the agent's patch: ``git add -A`` + ``git diff --cached --binary <base_commit>`` of its
   final ``/testbed``, staged with the image's pristine repository metadata (new files count,
   ignored ones and the agent's own ``.git`` do not);
2. puts a fresh checkout of ``base_commit`` in ``/testbed`` and applies the patch with
   swebench's ``GIT_APPLY_CMDS`` (``git apply``, ``--3way``, ``--reject``, ``patch --fuzz``);
3. runs the instance's eval script — swebench's ``TestSpec.eval_script`` from
   ``swebench.harness.utils.make_test_spec``: reset the test files to ``base_commit``, apply
   ``test_patch``, run the test command between swebench's output markers, record its exit code.

On the host, :func:`grade` reads the log with ``swebench.harness.grading.get_logs_eval`` (the
``parse_log_pytest`` parser from swebench's ``PARSER_REGISTRY``, named by the instance's
``log_parser``), and decides with ``get_eval_report`` / ``get_eval_tests_report`` /
``get_resolution_status``: resolved (``RESOLVED_FULL``) when every FAIL_TO_PASS and
PASS_TO_PASS test passes.

swebench's repository maps (``MAP_REPO_VERSION_TO_SPECS``, ``MAP_REPO_TO_PARSER``) know only the
repositories of SWE-bench itself; nothing here needs them: the parser is chosen by name from
``PARSER_REGISTRY`` (as swebench's own ``TestSpec.log_parser`` does) and the eval script is
generated here from the instance's fields. ``import swebench.harness`` takes a few seconds (it
imports ``datasets``), so it happens on the first evaluation, not when this module loads.
"""

from __future__ import annotations

import importlib
import os
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from agentgym.envs.swe.instance import SWEInstance
from agentgym.envs.swe.repos import PRISTINE, TESTBED
from agentgym.errors import EnvError

__all__ = ["PYTEST_PARSERS", "TEST_CMD", "Grade", "eval_script_lines", "grade", "make_test_spec", "verifier_script"]

TEST_CMD = "python3 -m pytest --no-header -rA --tb=no -p no:cacheprovider"
"""The test command of generated eval scripts (SWE-bench's pytest command, with the image's
python3; ``-rA`` prints the ``PASSED``/``FAILED`` lines the parser reads)."""
PYTEST_PARSERS = ("parse_log_pytest", "parse_log_pytest_options", "parse_log_pytest_v2")
"""Parsers whose test ids are pytest node ids, for which an eval script can be generated."""
HEREDOC = "EOF_114329324912"
"""The here-document delimiter swebench's eval scripts use for patches."""
MOUNT = "/agentgym-swe"
"""Where the verifier's scripts are mounted (read-only) in the sealed sandbox."""
PATCH_CAP = 1_000_000
"""Bytes of the agent's patch kept on the trajectory (the whole patch is graded)."""


def swebench() -> dict[str, ModuleType]:
    """swebench's modules this grader calls (imported on first use; EnvError when missing)."""
    try:
        return {name: importlib.import_module(f"swebench.{name}") for name in
                ("harness.constants", "harness.grading", "harness.utils", "harness.run_evaluation")}
    except ImportError as e:
        raise EnvError(f"grading SWE instances needs the swebench package ({e}); "
                       "install it with `pip install 'agentgym[swe]'`") from e


def eval_script_lines(inst: SWEInstance, test_cmd: str = TEST_CMD) -> list[str]:
    """The eval script of ``inst`` in swebench's shape (without its ``#!/bin/bash`` and
    ``set -uxo pipefail`` lines): reset the test patch's files to ``base_commit``, apply the
    test patch, run ``test_cmd`` on the graded tests' files between the output markers, reset."""
    constants = swebench()["harness.constants"]
    base = shlex.quote(inst.base_commit)
    files = " ".join(shlex.quote(f) for f in inst.test_patch_files)
    lines = [f"cd {TESTBED}", "git status", "git show --stat HEAD", f"git -c core.fileMode=false diff {base}"]
    if files:
        lines.append(f"git checkout {base} {files}")
    if inst.test_patch_new_files:
        lines.append("rm -rf " + " ".join(shlex.quote(f) for f in inst.test_patch_new_files))
    if inst.test_patch.strip():
        # swebench's own scripts ignore a failed apply; here it marks the run as not gradable
        lines += [f"git apply -v - <<'{HEREDOC}' || echo '{constants.RESET_FAILED}: test_patch did not apply'",
                  inst.test_patch.rstrip("\n"), HEREDOC]
    lines += [f": '{constants.START_TEST_OUTPUT}'",
              f"{test_cmd} {' '.join(shlex.quote(f) for f in inst.test_files)}",
              f": '{constants.END_TEST_OUTPUT}'"]
    if files:
        lines.append(f"git checkout {base} {files}")
    return lines


def make_test_spec(inst: SWEInstance, image: str, test_cmd: str = TEST_CMD) -> Any:
    """swebench's ``TestSpec`` of ``inst``, made by ``swebench.harness.utils.make_test_spec``
    (which also makes the script record the test command's exit code)."""
    if not inst.eval_script and inst.log_parser not in PYTEST_PARSERS:
        raise EnvError(f"{inst.instance_id}: its log_parser {inst.log_parser!r} is not pytest's, so its row "
                       "must carry its own eval_script")
    modules = swebench()
    registry = modules["harness.grading"].PARSER_REGISTRY
    if inst.log_parser not in registry:
        raise EnvError(f"{inst.instance_id}: log_parser {inst.log_parser!r} is not one of swebench's parsers "
                       f"({', '.join(sorted(registry))})")
    script = inst.eval_script or "\n".join(["#!/bin/bash", "set -uxo pipefail", *eval_script_lines(inst, test_cmd)])
    return modules["harness.utils"].make_test_spec({
        "instance_id": inst.instance_id, "image": image, "repo": inst.repo, "version": inst.version,
        "FAIL_TO_PASS": list(inst.fail_to_pass), "PASS_TO_PASS": list(inst.pass_to_pass),
        "log_parser": inst.log_parser, "eval_type": inst.eval_type, "eval_script": script})


def verifier_script(inst: SWEInstance, test_timeout_s: float) -> str:
    """The verifier: the agent's diff, a fresh checkout, the patch applied, the eval script run
    (see the module docstring). It writes ``model.patch`` (its first :data:`PATCH_CAP` bytes),
    ``model.patch.size``, ``apply.log`` and ``test_output.txt`` to ``/logs/verifier``; it exits
    non-zero only when the sandbox itself is broken (no pristine repository, no base commit)."""
    modules = swebench()
    constants = modules["harness.constants"]
    apply_cmds = " ".join(shlex.quote(cmd) for cmd in modules["harness.run_evaluation"].GIT_APPLY_CMDS)
    return f"""#!/bin/bash
# agentgym's SWE verifier (envs/swe/grading.py): runs sealed, over the agent's final files.
set -u
base={shlex.quote(inst.base_commit)}
pristine={PRISTINE}
out=/logs/verifier
work=$(mktemp -d)
export HOME="$work/home"
mkdir -p "$HOME" {TESTBED}
agent_git() {{ git --git-dir="$work/agent.git" --work-tree={TESTBED} "$@"; }}

# 1. The agent's patch: its final {TESTBED} against base_commit, staged with pristine metadata.
git init -q --bare "$work/agent.git" || exit 3
echo "$pristine/objects" > "$work/agent.git/objects/info/alternates"
printf '%s\\n' '*.pyc' '__pycache__/' '.pytest_cache/' >> "$work/agent.git/info/exclude"
agent_git read-tree "$base" || {{ echo "agentgym: base_commit $base is not in $pristine" >&2; exit 3; }}
agent_git add -A --ignore-errors . > "$out/add.log" 2>&1
agent_git diff --cached --binary "$base" > "$work/model.patch" || exit 3
stat -c %s "$work/model.patch" > "$out/model.patch.size"
head -c {PATCH_CAP} "$work/model.patch" > "$out/model.patch"

# 2. A fresh checkout of base_commit in its place; the patch applied the way swebench applies one.
cd / && rm -rf {TESTBED}
git clone -q --shared --no-checkout "$pristine" {TESTBED} || exit 3
cd {TESTBED} && git -c advice.detachedHead=false checkout -q "$base" || exit 3
git remote remove origin
if [ -s "$work/model.patch" ]; then
  applied=0
  for cmd in {apply_cmds}; do
    git checkout -q -- . && git clean -fdq
    if $cmd "$work/model.patch" >> "$out/apply.log" 2>&1; then applied=1; break; fi
  done
  if [ $applied = 0 ] && git apply --check --reverse "$work/model.patch" >> "$out/apply.log" 2>&1; then applied=1; fi
  if [ $applied = 0 ]; then echo {shlex.quote(constants.APPLY_PATCH_FAIL)} > "$out/test_output.txt"; exit 0; fi
  echo {shlex.quote(constants.APPLY_PATCH_PASS)} >> "$out/apply.log"
fi

# 3. swebench's eval script: the test patch, then the tests between the markers grading reads.
timeout -k 10 {int(test_timeout_s)} bash {MOUNT}/eval.sh > "$out/test_output.txt" 2>&1
rc=$?
if [ $rc = 124 ] || [ $rc = 137 ]; then echo {shlex.quote(constants.TESTS_TIMEOUT)} >> "$out/test_output.txt"; fi
exit 0
"""


@dataclass(frozen=True)
class Grade:
    """What swebench's grading said about one run."""

    resolved: bool
    resolution: str
    """``RESOLVED_FULL``, ``RESOLVED_PARTIAL`` or ``RESOLVED_NO`` (swebench's ``get_resolution_status``)."""
    tests: Mapping[str, str]
    """Each test id the log reports -> its status (``PASSED``, ``FAILED``, ``ERROR``, ``SKIPPED``, ``XFAIL``)."""
    tests_status: Mapping[str, Mapping[str, list[str]]]
    """swebench's report: ``FAIL_TO_PASS``/``PASS_TO_PASS`` (and the ``*_TO_FAIL`` lists) ->
    ``success``/``failure`` test ids."""
    log_found: bool
    """Whether the log held a gradable test run (``False``: the patch did not apply, the tests
    timed out, the test patch did not apply, or the log contradicts the tests' exit code)."""
    patch_applied: bool = True
    """Whether the agent's patch applied to a fresh checkout (no ``APPLY_PATCH_FAIL`` in the log)."""
    report: Mapping[str, Any] = field(default_factory=dict)
    """``get_eval_report``'s entry for the instance."""


def grade(test_spec: Any, log: str, model_patch: str | None) -> Grade:
    """Grade a test log (the verifier's ``test_output.txt``) with swebench's own functions:
    ``get_logs_eval`` (status map through ``PARSER_REGISTRY[test_spec.log_parser]``),
    ``get_eval_report`` (resolved or not), ``get_eval_tests_report`` and ``get_resolution_status``."""
    modules = swebench()
    grading, constants = modules["harness.grading"], modules["harness.constants"]
    fd, path = tempfile.mkstemp(prefix="agentgym-swe-log-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(log)
        status_map, found = grading.get_logs_eval(test_spec, path)
        prediction = {"instance_id": test_spec.instance_id, "model_patch": model_patch,
                      "model_name_or_path": "agentgym"}
        report = grading.get_eval_report(test_spec, prediction, path, include_tests_status=True)[test_spec.instance_id]
    finally:
        os.unlink(path)
    gold = {constants.FAIL_TO_PASS: test_spec.FAIL_TO_PASS, constants.PASS_TO_PASS: test_spec.PASS_TO_PASS,
            constants.FAIL_TO_FAIL: [], constants.PASS_TO_FAIL: []}
    tests_status = report.get("tests_status") or grading.get_eval_tests_report(
        status_map, gold, eval_type=constants.EvalType(test_spec.eval_type))
    resolution = grading.get_resolution_status(tests_status) if found else constants.ResolvedStatus.NO.value
    return Grade(resolved=bool(report["resolved"]), resolution=resolution, tests=dict(status_map),
                 tests_status=tests_status, log_found=found, patch_applied=constants.APPLY_PATCH_FAIL not in log,
                 report=report)
