"""Helpers for the multi-agent tests: a scripted team policy for ``agentgym/planner-v0`` and a
team task whose reward alternates.

:class:`ScriptedTeam` reads each prompt the proxy sends the engine (the planner's or a worker's:
their system prompts differ) and answers like a competent team: the planner delegates every
list item of its task, then checks ``/app`` with ``ls`` and finishes; a worker runs the command
that meets its requirement and reports. Episodes alternate between that and a team whose workers
only look around (``ls``), so a group of two samples holds a success and a failure. Episodes must
run one at a time (``concurrency=1``): the policy counts them by the planner's first call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from agentgym.env import Env, Evaluation
from agentgym.envs.workspace import _ORACLE, KINDS
from agentgym.runtime.base import Runtime
from agentgym.runtime.images import BASE_IMAGE
from agentgym.types import Task, TaskLimits

TEAM_ENV_ID = "test/team-alternating-v0"


def call(name: str, **arguments: str) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


class ScriptedTeam:
    """``ScriptedEngine(tokenizer, ScriptedTeam(tokenizer))``: see the module docstring."""

    def __init__(self, tokenizer: Any, fail_every: int = 2) -> None:
        self.tokenizer = tokenizer
        self.fail_every = fail_every
        self.episodes = 0
        self.failing = False

    def __call__(self, prompt_ids: Sequence[int], n: int) -> str:
        text = self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False)
        turn = text.count("<|im_start|>assistant") - 1  # the generation prompt opens one more
        if "You are the planner" in text:
            return self._planner(text, turn)
        return self._worker(text, turn)

    def _planner(self, text: str, turn: int) -> str:
        if turn == 0:
            self.failing = self.episodes % self.fail_every == self.fail_every - 1
            self.episodes += 1
        task = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
        items = [line[2:] for line in task.splitlines() if line.startswith("- ")]
        if "Each of the" in task:  # split="lines": the harness delegated the items already
            items = []
        if turn < len(items):
            return "Delegating." + call("delegate", task=f"In /app, create {items[turn]}.")
        if turn == len(items):
            return call("bash", command="ls /app")
        return "All requirements are met."

    def _worker(self, text: str, turn: int) -> str:
        if turn > 0:
            return "Done."
        if self.failing:
            return call("bash", command="ls /app")
        sub_task = text.split("Sub-task from the planner:\n", 1)[1]
        kind = next((k for k, wording in KINDS.items() if wording.split(" {")[0] in sub_task), "file")
        return call("bash", command=_ORACLE[kind].format(word="hello"))


class TeamAlternatingEnv(Env):
    """Two-item team tasks whose reward alternates per evaluation (every group of two has a
    success and a failure, whatever the policy does): the training loop is under test."""

    id = TEAM_ENV_ID

    def __init__(self, num_tasks: int = 2) -> None:
        self.num_tasks = num_tasks
        self.seen: Counter[str] = Counter()

    def tasks(self) -> list[Task]:
        return [Task(id=f"team-{i}", instruction="Set up /app. It must contain:\n- a new directory\n- a new file\n",
                     env=self.id, image=BASE_IMAGE, workdir="/app", limits=TaskLimits(timeout_s=240, max_steps=2))
                for i in range(self.num_tasks)]

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        self.seen[task.id] += 1
        return Evaluation(reward=float(self.seen[task.id] % 2))


def register() -> None:
    from agentgym import registries

    registries.envs.register(TEAM_ENV_ID, "tests.integration.multiagent_helpers:TeamAlternatingEnv",
                             description="test: two-item team tasks with alternating rewards")
