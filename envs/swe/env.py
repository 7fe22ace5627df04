"""``SWEEnv``: SWE-bench instances as an environment (``swe/basic-v0`` and any user's file).

Each instance runs in its repository's image (:mod:`.repos`) with the repository in
``/testbed`` checked out at ``base_commit`` (a clean tree on branch ``main``); the agent is
given the issue (``problem_statement``) and edits the files. :meth:`SWEEnv.evaluate` grades the
final state the way SWE-bench does (:mod:`.grading`): the agent's ``git diff`` is applied to a
fresh checkout, the instance's ``test_patch`` is applied by the verifier, the FAIL_TO_PASS and
PASS_TO_PASS tests run, and swebench's own log parser and resolution status decide. Reward 1
when resolved, else 0; ``details["patch"]`` is the agent's diff, which the rollout stores on the
trajectory (``trajectory.metadata["eval"]``), and ``details["tests"]`` each test's status.

>>> env = SWEEnv()
>>> [t.id for t in env.tasks()][:2]
['agentgym__confparse-11', 'agentgym__confparse-13']
>>> env.task("agentgym__textkit-7").workdir
'/testbed'
"""

from __future__ import annotations

import os
import shlex
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.env import Env, Evaluation
from agentgym.envs.swe.grading import MOUNT, PATCH_CAP, grade, make_test_spec, verifier_script
from agentgym.envs.swe.instance import SWEInstance, ignored_fields, load_instances
from agentgym.envs.swe.repos import TESTBED, RepoImage, builtin_context, builtin_repos, local_context
from agentgym.errors import EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend
from agentgym.types import Task, TaskLimits
from agentgym.verify import run_verifier

__all__ = ["BUILTIN_INSTANCES", "INSTRUCTION", "SWEEnv", "render_instruction"]

BUILTIN_INSTANCES = Path(__file__).parent / "data" / "instances.jsonl"
"""The built-in suite (``swe/basic-v0``), in the SWE-bench schema."""
INSTRUCTION = """{problem_statement}

---
The repository {repo} is checked out in {testbed} at commit {short}. Resolve the issue above by
changing the repository's source files. Tests you cannot see check the fix, and the repository's
existing tests must keep passing. You do not need to add tests or to commit: what counts is the
final content of {testbed}.
"""
VERIFIER_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
    "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8",
}
"""The verifier's environment: no git configuration, no user site-packages (``PATH`` is the
trusted system path, set by :func:`~agentgym.verify.run_verifier`)."""
OUTPUT_TAIL = 4000


def render_instruction(inst: SWEInstance) -> str:
    """What the agent is told: the issue, then where the repository is."""
    return INSTRUCTION.format(problem_statement=inst.problem_statement.strip(), repo=inst.repo, testbed=TESTBED,
                              short=inst.base_commit[:12])


class SWEEnv(Env):
    """A suite of SWE-bench instances (see the module docstring).

    Args:
        path: a SWE-bench-style ``.jsonl`` or ``.json`` file (SWE-bench, SWE-Gym and SWE-smith
            rows read the same, :mod:`.instance`); ``None``: the built-in suite.
        instance_ids: keep only these instances, in this order.
        repos: repository name (``owner/name``, as rows' ``repo``) -> a local git repository
            holding their ``base_commit``, for repositories other than the built-in ones.
        env_id: the env id (``Task.env`` of the tasks).
        test_timeout_s: the limit on the tests of one evaluation (past it: not resolved).
        timeout_s, max_steps, memory: the agent's limits.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, instance_ids: Sequence[str] | None = None,
                 repos: Mapping[str, str | os.PathLike[str]] | None = None, env_id: str | None = None,
                 test_timeout_s: float = 300.0, timeout_s: float = 1800.0, max_steps: int = 50,
                 memory: str = "2g") -> None:
        self.path = Path(path) if path is not None else BUILTIN_INSTANCES
        self.instance_ids = list(instance_ids) if instance_ids is not None else None
        self.repos = {name: str(p) for name, p in (repos or {}).items()}
        self.id = env_id or ("swe/basic-v0" if path is None else "swe")
        self.test_timeout_s = test_timeout_s
        self.limits = TaskLimits(timeout_s=timeout_s, max_steps=max_steps, memory=memory)
        self._instances: dict[str, SWEInstance] | None = None
        self._tasks: list[Task] | None = None
        self._images: dict[str, RepoImage | None] = {}

    def __repr__(self) -> str:
        return f"SWEEnv(id={self.id!r}, path={str(self.path)!r})"

    # -- instances and tasks ---------------------------------------------------------------------
    def instances(self) -> dict[str, SWEInstance]:
        """The suite's instances by id (read once; :class:`EnvError` for a malformed file)."""
        if self._instances is None:
            loaded = load_instances(self.path, self.instance_ids)
            ignored = ignored_fields(loaded)
            if ignored:
                warnings.warn(f"{self.path}: column(s) not used by agentgym: "
                              + "; ".join(f"{name} ({len(ids)} rows)" for name, ids in sorted(ignored.items())),
                              stacklevel=2)
            self._instances = {inst.instance_id: inst for inst in loaded}
        return self._instances

    def instance(self, task: Task) -> SWEInstance:
        """The instance behind ``task``."""
        inst = self.instances().get(task.id)
        if inst is None:
            raise EnvError(f"{self.id}: {task.id!r} is not one of its instances")
        return inst

    def repo_image(self, repo: str) -> RepoImage | None:
        """The image of ``repo``, or ``None`` when this env has no source for it."""
        if repo not in self._images:
            if repo in self.repos:
                self._images[repo] = local_context(repo, self.repos[repo])
            elif repo in builtin_repos():
                self._images[repo] = builtin_context(repo)
            else:
                self._images[repo] = None
        return self._images[repo]

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            tasks = []
            instances = list(self.instances().values())
            if self.instance_ids is None:  # a selection keeps its order; a whole suite is sorted by id
                instances.sort(key=lambda i: i.instance_id)
            for inst in instances:
                image = self.repo_image(inst.repo) if inst.base_commit else None
                reason = inst.unsupported or (None if image else (
                    f"no source for repository {inst.repo!r}: built-in ones are {', '.join(sorted(builtin_repos()))}; "
                    f"pass SWEEnv(repos={{{inst.repo!r}: '/path/to/a/local/clone'}})"))
                tasks.append(Task(
                    id=inst.instance_id, instruction=render_instruction(inst), env=self.id,
                    image=image.image if image else None, dockerfile_dir=image.context if image else None,
                    workdir=TESTBED, limits=self.limits, network="none",
                    metadata={"repo": inst.repo, "base_commit": inst.base_commit, "version": inst.version,
                              "created_at": inst.created_at, "source": inst.source,
                              "ignored_fields": sorted(inst.extra), "unsupported": reason or ""}))
            self._tasks = tasks
        return list(self._tasks)

    # -- sandboxes -------------------------------------------------------------------------------
    def unsupported(self, task: Task, backend: RuntimeBackend) -> str | None:
        """Instances run in their repository's image (Docker), and need a base commit and a
        source for their repository."""
        if task.metadata.get("unsupported"):
            return str(task.metadata["unsupported"])
        if not backend.uses_images:
            return "SWE instances run in their repository's image; use a runtime with images (docker)"
        return None

    async def setup(self, task: Task, runtime: Runtime) -> None:
        """Check out ``base_commit`` in ``/testbed``: branch ``main`` there, a clean tree, no
        reflog of the image's later commits."""
        base = shlex.quote(self.instance(task).base_commit)
        result = await runtime.exec(
            f"git cat-file -e {base}^{{commit}} && git checkout -q -f -B main {base} && git clean -qfdx "
            "&& git reflog expire --expire=now --all", timeout=120, workdir=TESTBED, login=False)
        if not result.ok:
            raise EnvError(f"{task.id}: cannot check out base_commit {base} in {TESTBED} of {task.image}: "
                           f"{(result.stderr or result.stdout).strip()[-1000:]}")

    # -- scoring ---------------------------------------------------------------------------------
    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        """Grade the final ``/testbed`` the way SWE-bench does (see :mod:`.grading`), in a
        sealed sandbox (:func:`~agentgym.verify.run_verifier`).

        Reward 1 when swebench says resolved, else 0. ``details``: ``patch`` (the agent's diff
        against ``base_commit``), ``resolution``, ``tests`` (test id -> status), ``FAIL_TO_PASS``
        and ``PASS_TO_PASS`` (``success``/``failure`` lists), ``patch_applied``, ``log_gradable``
        (swebench found a test run it trusts in the log), the log's tail.
        A verifier that cannot run (timeout, broken image) raises :class:`EnvError`.
        """
        inst = self.instance(task)
        test_spec = make_test_spec(inst, task.image or "")
        with tempfile.TemporaryDirectory(prefix="agentgym-swe-") as tmp:
            (Path(tmp) / "verify.sh").write_text(verifier_script(inst, self.test_timeout_s))
            (Path(tmp) / "eval.sh").write_text(test_spec.eval_script)
            timeout = self.test_timeout_s + 180
            run = await run_verifier(runtime, f"bash {MOUNT}/verify.sh", trusted_image=task.image,
                                     mounts={tmp: MOUNT}, env=VERIFIER_ENV, timeout=timeout, workdir="/")
        result = run.result
        if result.timed_out:
            raise EnvError(f"{task.id}: the SWE verifier timed out after {timeout:g}s")
        log = run.text("test_output.txt")
        if result.exit_code != 0 or log is None:
            raise EnvError(f"{task.id}: the SWE verifier failed (exit {result.exit_code}): "
                           f"{(result.stderr + result.stdout)[-1500:]}")
        patch = run.text("model.patch") or ""
        size = int((run.text("model.patch.size") or "0").strip() or 0)
        graded = grade(test_spec, log, patch)
        details: dict[str, Any] = {
            "instance_id": inst.instance_id, "resolved": graded.resolved, "resolution": graded.resolution,
            "patch": patch, "patch_bytes": size, "patch_truncated": size > PATCH_CAP,
            "patch_applied": graded.patch_applied, "log_gradable": graded.log_found,
            "tests": dict(graded.tests),
            "FAIL_TO_PASS": dict(graded.tests_status.get("FAIL_TO_PASS", {})),
            "PASS_TO_PASS": dict(graded.tests_status.get("PASS_TO_PASS", {})),
            "test_output": log[-OUTPUT_TAIL:], "apply_log": (run.text("apply.log") or "")[-OUTPUT_TAIL:],
            "isolation": run.isolation, "tampering": run.evidence,
        }
        return Evaluation(reward=1.0 if graded.resolved else 0.0, details=details)

    async def oracle(self, task: Task, runtime: Runtime) -> ExecResult:
        """Apply the gold ``patch`` in ``/testbed`` (only the fix: the verifier applies the tests)."""
        inst = self.instance(task)
        if not inst.patch.strip():
            raise EnvError(f"{task.id}: the instance has no gold patch")
        await runtime.write_file("/tmp/agentgym-gold.patch", inst.patch)
        return await runtime.exec("git apply --verbose /tmp/agentgym-gold.patch && rm -f /tmp/agentgym-gold.patch",
                                  timeout=120, workdir=TESTBED, login=False)
