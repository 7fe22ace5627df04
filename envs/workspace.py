"""``terminal/workspace-v0``: procedurally generated terminal tasks for measuring learning.

One seed gives one instance; a suite holds as many as asked (thousands are cheap: a task is a
few strings until it runs). Each instance asks the agent to leave the workspace ``/app`` in a
state that meets several requirements at once, drawn from:

=========  ==============================================================
kind       what must hold when the agent stops
=========  ==============================================================
``dir``    a new directory directly in ``/app``
``file``   a new non-empty file directly in ``/app``
``word``   a new file in ``/app`` (or one level down) containing a word
``empty``  a new empty file directly in ``/app``
``python`` a new Python file (``*.py``) in ``/app`` or one level down
``nested`` a non-empty file inside a new subdirectory of ``/app``
=========  ==============================================================

"New" means not among the files the instance put there before the agent started (each
instance seeds ``/app`` with a few distractor files, the same for every sample of one task).
Success needs one correct command per requirement, so at least two in sequence with the
default ``requirements=2``; the commands are ones the warm-started tiny model already emits
sometimes (``mkdir``, ``echo ... > file``, ``touch``): before any training it meets both
requirements of a ``terminal/workspace-v0`` task in about 15% of episodes (measured: 30 of 192
episodes, 17 of 24 groups with differing rewards, ReAct harness, 10 steps), so a group of
samples holds successes to learn from, and the states an agent passes through (``ls`` of the same seeded
directory, the same error messages) recur across the samples of a group, which gives GiGPO's
anchor states something to group.

The reward is 1 when every requirement holds, else 0; ``details`` says which ones held. It
runs on the local runtime and in Docker (``agentgym/base:bookworm``, nothing to build).

``terminal/workspace-team-v0`` asks for three of the basic requirements at once. They are
independent (no requirement's command undoes another's) and the instruction lists one per line,
and each line read alone with the instruction's header and footer is a complete task: a team
task, where a planner hands one requirement to each worker (``agentgym/planner-v0`` with
``split="lines"`` does exactly that) and the episode succeeds only if every worker did its part.

>>> env = WorkspaceEnv(num_tasks=3, seed=7)
>>> [t.id for t in env.tasks()]
['ws-7-0', 'ws-7-1', 'ws-7-2']
>>> inst = env.instance(env.tasks()[0])
>>> len(inst.kinds), inst == env.instance(WorkspaceEnv(num_tasks=3, seed=7).tasks()[0])
(2, True)
>>> print(render_instruction(Instance(seed=0, kinds=("dir", "word"), word="hello", noise=())))
Set up the workspace in /app. When you stop, /app must contain:
- a new directory (any name)
- a new file containing the word hello
Files that are already there do not count.
"""

from __future__ import annotations

import json
import random
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from agentgym.env import Env, Evaluation
from agentgym.errors import ConfigError, EnvError
from agentgym.runtime.base import ExecResult, Runtime
from agentgym.runtime.images import BASE_IMAGE
from agentgym.types import Task, TaskLimits
from agentgym.verify import run_verifier

__all__ = ["BASIC_KINDS", "KINDS", "Instance", "WorkspaceEnv", "make_instance", "render_instruction"]

KINDS: dict[str, str] = {
    "dir": "a new directory (any name)",
    "file": "a new non-empty file (any name)",
    "word": "a new file containing the word {word}",
    "empty": "a new empty file",
    "python": "a new Python file (its name ends in .py)",
    "nested": "a non-empty file inside a new subdirectory",
}
"""Requirement kinds and how the instruction words them."""
BASIC_KINDS = ("dir", "file", "empty", "python")
"""The kinds ``terminal/workspace-v0`` draws from: each one is met by a single generic command
that the warm-started tiny model sometimes emits (``word`` and ``nested`` it almost never meets
before training: ``terminal/workspace-hard-v0`` adds them)."""
WORDS = ("hello", "done", "world", "ok", "42")
NOISE_FILES = ("README.md", "notes.md", "data.csv", "config.ini", "todo.md", "LICENSE", "setup.cfg")
NOISE_LINES = ("# project notes", "a,b,c\n1,2,3", "[main]\nmode = test", "- [ ] write the docs", "MIT")
APP = "/app"

_CHECK = r'''
import json, os, sys
app, kinds, word, noise = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], set(json.loads(sys.argv[4]))
entries = []  # (relative path, is_dir, size, text) of everything new, one level down at most
for name in sorted(os.listdir(app)) if os.path.isdir(app) else []:
    if name in noise:
        continue
    path = os.path.join(app, name)
    if os.path.islink(path):
        continue
    if os.path.isdir(path):
        entries.append((name, True, 0, ""))
        for sub in sorted(os.listdir(path)):
            p = os.path.join(path, sub)
            if os.path.isfile(p) and not os.path.islink(p):
                entries.append((name + "/" + sub, False, os.path.getsize(p), open(p, errors="replace").read(65536)))
    elif os.path.isfile(path):
        entries.append((name, False, os.path.getsize(path), open(path, errors="replace").read(65536)))
top = [e for e in entries if "/" not in e[0]]
held = {
    "dir": any(e[1] for e in top),
    "file": any(not e[1] and e[2] > 0 for e in top),
    "word": any(not e[1] and word in e[3] for e in entries),
    "empty": any(not e[1] and e[2] == 0 for e in top),
    "python": any(not e[1] and e[0].endswith(".py") for e in entries),
    "nested": any(not e[1] and "/" in e[0] and e[2] > 0 for e in entries),
}
print(json.dumps({k: held[k] for k in kinds}))
'''

_ORACLE = {
    "dir": "mkdir -p /app/made-by-oracle",
    "file": "printf 'note\\n' > /app/oracle-note.txt",
    "word": "printf '%s\\n' {word} > /app/oracle-word.txt",
    "empty": ": > /app/oracle-empty.txt",
    "python": "printf 'print(1)\\n' > /app/oracle.py",
    "nested": "mkdir -p /app/oracle-sub && printf 'x\\n' > /app/oracle-sub/inner.txt",
}


@dataclass(frozen=True)
class Instance:
    """What one seed generates."""

    seed: int
    kinds: tuple[str, ...]
    word: str
    noise: tuple[tuple[str, str], ...]
    """Distractor files put in ``/app`` before the agent starts: (name, content)."""


def make_instance(seed: int, requirements: int = 2, kinds: Sequence[str] = tuple(KINDS)) -> Instance:
    """The instance of ``seed``: ``requirements`` distinct kinds, a word, distractor files."""
    if not 1 <= requirements <= len(kinds):
        raise ConfigError(f"requirements must be between 1 and {len(kinds)}, got {requirements}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown requirement kind(s) {unknown}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    chosen = tuple(sorted(rng.sample(list(kinds), requirements), key=list(KINDS).index))
    word = rng.choice(WORDS)
    names = rng.sample(NOISE_FILES, rng.randint(1, 3))
    noise = tuple((name, rng.choice(NOISE_LINES) + "\n") for name in names)
    return Instance(seed=seed, kinds=chosen, word=word, noise=noise)


def render_instruction(inst: Instance) -> str:
    lines = "\n".join(f"- {KINDS[k].format(word=inst.word)}" for k in inst.kinds)
    return (f"Set up the workspace in {APP}. When you stop, {APP} must contain:\n{lines}\n"
            "Files that are already there do not count.")


class WorkspaceEnv(Env):
    """Procedurally generated workspace tasks (see the module docstring).

    Args:
        num_tasks: instances in the suite (task ids ``ws-<seed>-<i>``).
        seed: suite seed; instance ``i`` uses seed ``seed * 1_000_003 + i``.
        requirements: requirements per instance.
        kinds: the kinds instances draw from (default: :data:`BASIC_KINDS`).
        max_steps, timeout_s: the tasks' limits.
        env_id: the suite's id.
    """

    def __init__(self, num_tasks: int = 1000, seed: int = 0, requirements: int = 2,
                 kinds: Sequence[str] = BASIC_KINDS, max_steps: int = 8, timeout_s: float = 300.0,
                 env_id: str = "terminal/workspace-v0") -> None:
        if num_tasks < 1:
            raise ConfigError(f"num_tasks must be at least 1, got {num_tasks}")
        self.id = env_id
        self.num_tasks = num_tasks
        self.seed = seed
        self.requirements = requirements
        self.kinds = tuple(kinds)
        self.limits = TaskLimits(timeout_s=timeout_s, max_steps=max_steps, memory="512m")
        make_instance(seed, requirements, self.kinds)  # validate the arguments now
        self._tasks: list[Task] | None = None

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            self._tasks = [self._task(i) for i in range(self.num_tasks)]
        return list(self._tasks)

    def _task(self, i: int) -> Task:
        inst = make_instance(self.seed * 1_000_003 + i, self.requirements, self.kinds)
        return Task(id=f"ws-{self.seed}-{i}", instruction=render_instruction(inst), env=self.id, image=BASE_IMAGE,
                    workdir=APP, limits=self.limits, network="none",
                    metadata={"seed": inst.seed, "kinds": list(inst.kinds), "word": inst.word,
                              "noise": [list(n) for n in inst.noise]})

    @staticmethod
    def instance(task: Task) -> Instance:
        md = task.metadata
        try:
            return Instance(seed=int(md["seed"]), kinds=tuple(md["kinds"]), word=str(md["word"]),
                            noise=tuple((str(n), str(c)) for n, c in md["noise"]))
        except (KeyError, TypeError, ValueError) as e:
            raise EnvError(f"{task.id} is not a workspace task (metadata {e})") from e

    async def setup(self, task: Task, runtime: Runtime) -> None:
        for name, content in self.instance(task).noise:
            await runtime.write_file(f"{APP}/{name}", content)

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        """Check the requirements where the agent cannot interfere (:func:`agentgym.verify.run_verifier`:
        in Docker, a fresh container over the agent's files with the base image's own python)."""
        inst = self.instance(task)
        argv = ["python3", "-I", "-c", _CHECK, APP, json.dumps(list(inst.kinds)), inst.word,
                json.dumps([n for n, _ in inst.noise])]
        run = await run_verifier(runtime, shlex.join(argv), trusted_image=task.image, timeout=60)
        result = run.result
        if result.exit_code != 0 or result.timed_out:
            raise EnvError(f"{task.id}: the workspace check failed to run (exit {result.exit_code}): "
                           f"{(result.stderr or result.stdout)[-1000:]}")
        try:
            held: dict[str, bool] = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise EnvError(f"{task.id}: the workspace check printed no verdict: {result.stdout[-500:]!r}") from e
        return Evaluation(reward=float(all(held.values())),
                          details={"held": held, "isolation": run.isolation, "tampering": run.evidence})

    async def oracle(self, task: Task, runtime: Runtime) -> ExecResult:
        inst = self.instance(task)
        script = " && ".join(_ORACLE[k].format(word=shlex.quote(inst.word)) for k in inst.kinds)
        return await runtime.exec(script, timeout=60)
