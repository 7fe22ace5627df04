"""``GuiEnv``: GUI tasks on a virtual display, acted on with mouse and keyboard.

Every task runs in the suite's one image (:mod:`.images`), its app chosen by
``AGENTGYM_GUI_APP``. :meth:`GuiEnv.setup` starts the desktop (``container/launch.py``: Xvfb,
openbox, the app's services, restarted if they exit) and waits until the app answers and the
screen is still. An agent then acts through the action server (:meth:`GuiEnv.actions`, an
:class:`~agentgym.envs.gui.client.ActionClient` over one ``docker exec`` stream per episode), or
in-process through :class:`~agentgym.envs.gui.gym.GuiGymEnv` (``agentgym.make("gui/...")``).

The reward comes from the app's state (``/var/lib/agentgym-gui/state.json``, which the apps save
on every change), graded by the task's grader (:mod:`.tasks`) into named checks; it is 1 when all
hold. Pixels are never graded. Which state: the host records every action it sends through
:meth:`GuiEnv.actions`, and :meth:`GuiEnv.evaluate` replays them in a fresh container of the task's
image and reads the state there, so nothing but those GUI actions can have made it (a state file
written from a shell, a process left behind, do not count; that the agent's own container saved a
different state is recorded as tampering). The agent's state file is also read, through
:func:`agentgym.verify.run_verifier` (a sealed container over its final files, no process of the
episode left): it is the state graded when no actions were recorded (an agent that drove the
action server from inside the container).

>>> env = GuiEnv()
>>> [t.id for t in env.tasks()]
['tk-form', 'tk-todo', 'web-cart']
>>> env.task("web-cart").metadata["app"], env.task("web-cart").limits.memory
('cart', '2g')
"""

from __future__ import annotations

import asyncio
import json
import shlex
import weakref
from collections.abc import Sequence
from typing import Any

from agentgym.env import Env, Evaluation
from agentgym.envs.gui.client import ACTIOND, ActionClient
from agentgym.envs.gui.images import app_dir, gui_image
from agentgym.envs.gui.tasks import APPS, TASKS, GuiTaskSpec
from agentgym.errors import EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend
from agentgym.types import Task, TaskLimits
from agentgym.verify import run_verifier

__all__ = ["SCREEN", "STATE_FILE", "GuiEnv"]

SCREEN = (800, 600)
"""Width and height of the virtual display (every task of the suite: one observation shape)."""
STATE_FILE = "/var/lib/agentgym-gui/state.json"
"""Where the apps write their state (what the verifier reads)."""
LAUNCH = "/opt/agentgym-gui/launch.py"
READY_TIMEOUT_S = 90.0

_READ_STATE = r'''
import json, os, stat, sys
path = sys.argv[1]
try:
    info = os.lstat(path)
except FileNotFoundError:
    print(json.dumps({"state": None, "problem": "no state file: the app never saved"})); sys.exit(0)
if not stat.S_ISREG(info.st_mode) or info.st_size > 1 << 20:
    print(json.dumps({"state": None, "problem": "the state file is not a regular file under 1 MB"})); sys.exit(0)
try:
    state = json.load(open(path))
except ValueError as e:
    print(json.dumps({"state": None, "problem": f"the state file is not JSON: {e}"})); sys.exit(0)
print(json.dumps({"state": state}))
'''


_READ_COMMAND = shlex.join(["python3", "-I", "-c", _READ_STATE, STATE_FILE])


def _verdict(task: Task, result: ExecResult) -> tuple[Any, str | None]:
    """The state reader's answer: the state (``None`` when there is none) and why it is missing."""
    try:
        verdict = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise EnvError(f"{task.id}: the state reader failed (exit {result.exit_code}): "
                       f"{(result.stderr or result.stdout)[-1000:]}") from e
    return verdict.get("state"), verdict.get("problem")


_DESKTOP = ("Xvfb :0 ", "openbox --config-file /opt/agentgym-gui/", "python3 /opt/agentgym-gui/",
            "/usr/lib/chromium/chromium ", "chromium ", "python3 form.py", "python3 todo.py", "python3 server.py")
"""How the desktop's own processes (launch.py's services, the action server) show in ``ps``: the
seal lists every process still running as evidence, and these are expected."""
_STILL_RUNNING = "process: still running after the agent finished: "


def _desktop_process(evidence: str) -> bool:
    return evidence.startswith(_STILL_RUNNING) and evidence[len(_STILL_RUNNING):].startswith(_DESKTOP)


class GuiEnv(Env):
    """The GUI suite (see the module docstring and :mod:`.tasks`).

    Args:
        task_ids: keep only these tasks, in this order (default: all).
        env_id: the env id (``Task.env`` of the tasks).
        max_steps, timeout_s: the agent's limits.
    """

    def __init__(self, task_ids: Sequence[str] | None = None, env_id: str = "gui/all-v0", max_steps: int = 50,
                 timeout_s: float = 900.0) -> None:
        unknown = [t for t in task_ids or () if t not in TASKS]
        if unknown:
            raise EnvError(f"no GUI task {', '.join(map(repr, unknown))}; tasks: {', '.join(TASKS)}")
        self.id = env_id
        self.task_ids = list(task_ids) if task_ids else list(TASKS)
        self.max_steps = max_steps
        self.timeout_s = timeout_s
        self._tasks: list[Task] | None = None
        # What evaluate needs to replay an episode: the actions each runtime's clients performed
        # (actions()), and the backend it was started on (start()).
        self._journals: weakref.WeakKeyDictionary[Runtime, list[dict[str, Any]]] = weakref.WeakKeyDictionary()
        self._backends: weakref.WeakKeyDictionary[Runtime, RuntimeBackend] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"GuiEnv(id={self.id!r}, tasks={self.task_ids!r})"

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            tasks = []
            for task_id in self.task_ids:
                spec = TASKS[task_id]
                app = APPS[spec.app]
                image = gui_image()
                tasks.append(Task(
                    id=spec.id, instruction=spec.instruction, env=self.id, image=image.image,
                    dockerfile_dir=image.context, workdir="/root", network="none",
                    limits=TaskLimits(timeout_s=self.timeout_s, max_steps=self.max_steps, memory=app.memory),
                    env_vars={"AGENTGYM_GUI_SCREEN": f"{SCREEN[0]}x{SCREEN[1]}", "AGENTGYM_GUI_APP": app_dir(app.name)},
                    metadata={"family": "gui", "app": app.name, "browser": app.browser, "screen": list(SCREEN),
                              "params": dict(spec.params), "tags": list(spec.tags)}))
            self._tasks = tasks
        return list(self._tasks)

    def spec(self, task: Task) -> GuiTaskSpec:
        spec = TASKS.get(task.id)
        if spec is None or task.metadata.get("family") != "gui":
            raise EnvError(f"{self.id}: {task.id!r} is not one of its GUI tasks")
        return spec

    # -- sandboxes -------------------------------------------------------------------------------
    def unsupported(self, task: Task, backend: RuntimeBackend) -> str | None:
        """GUI tasks run Xvfb, a window manager and the app from their image (Docker)."""
        if not backend.uses_images:
            return "GUI tasks run Xvfb, a window manager and their app from the task's image; use docker"
        return None

    async def start(self, task: Task, backend: RuntimeBackend, *, image: str | None = None,
                    **spec_overrides: Any) -> Runtime:
        runtime = await super().start(task, backend, image=image, **spec_overrides)
        self._backends[runtime] = backend
        return runtime

    async def actions(self, runtime: Runtime) -> ActionClient:
        """A client of ``runtime``'s action server whose actions are recorded for the verifier's
        replay (:meth:`evaluate`): how agents (the gymnasium adapter, the oracle) act."""
        return await ActionClient.over_exec(runtime, journal=self._journals.setdefault(runtime, []))

    async def setup(self, task: Task, runtime: Runtime) -> None:
        """Start the desktop detached (it outlives this command), then wait until the app
        answers on its socket and the screen is still."""
        started = await runtime.exec(f"setsid -f python3 {LAUNCH} >/var/log/agentgym-gui.log 2>&1 </dev/null",
                                     timeout=30, login=False)
        if not started.ok:
            raise EnvError(f"{task.id}: cannot start the desktop: {(started.stderr or started.stdout)[-1000:]}")
        ready = await runtime.exec(f"python3 {ACTIOND} --wait-ready {READY_TIMEOUT_S:g}",
                                   timeout=READY_TIMEOUT_S + 30, login=False)
        if not ready.ok:
            log = await runtime.exec("tail -n 40 /var/log/agentgym-gui.log", timeout=10, login=False)
            raise EnvError(f"{task.id}: the app did not come up: {ready.stderr.strip()[-500:]}\n"
                           f"--- /var/log/agentgym-gui.log ---\n{log.stdout[-3000:]}")

    # -- scoring ---------------------------------------------------------------------------------
    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        """Grade the app's state (see the module docstring): the state the recorded actions
        produce when replayed in a fresh container of the task's image, or, when nothing was
        recorded (an agent that drove the action server itself), the state file read in a sealed
        container. ``details``: ``checks`` (name -> held), ``state``, ``verified_by``,
        ``problem`` (why there is no state), ``replay`` (how many actions, whether the agent's
        container saved the same state), ``isolation`` and ``tampering``."""
        spec = self.spec(task)
        journal = self._journals.pop(runtime, None)
        backend = self._backends.pop(runtime, None)
        # No trusted system paths (trusted_image=None: they would cost an export of the image's
        # /usr, chromium included, for nothing): with a record, the replay is graded and this read
        # is evidence; without one, the file it reads is the agent's to write anyway.
        sealed = run_verifier(runtime, _READ_COMMAND, trusted_image=None, timeout=60, workdir="/")
        if journal is None or backend is None:
            run = await sealed
        else:  # the replay's container starts while the agent's is sealed and read
            run, replayed = await asyncio.gather(sealed, self._replay(task, backend, journal))
        tampering = [e for e in run.evidence if not _desktop_process(e)]
        try:
            saved, problem = _verdict(task, run.result)
        except EnvError as e:
            if journal is None or backend is None:
                raise
            saved, problem = None, None  # only evidence here: the replay decides
            tampering.append(f"state: the agent's container could not be read: {str(e)[:300]}")
        details: dict[str, Any] = {"isolation": run.isolation}
        if journal is None or backend is None:
            state = saved
            details["verified_by"] = "the state file, read in a sealed container (no recorded actions to replay)"
        else:
            state, problem = replayed
            details["verified_by"] = f"replaying the episode's {len(journal)} recorded actions in a fresh container"
            details["replay"] = {"actions": len(journal), "matches_agent_state": state == saved}
            if state != saved:
                tampering.append("state: the agent's container saved a state its recorded actions do not produce")
        checks = spec.grade(state, spec.params)
        details.update(checks=checks, state=state, tampering=tampering)
        if problem:
            details["problem"] = problem
        return Evaluation(reward=float(all(checks.values())), details=details)

    async def _replay(self, task: Task, backend: RuntimeBackend, journal: list[dict[str, Any]]) -> tuple[Any, str | None]:
        """The app's state after ``journal``'s actions, in a fresh container of the task's image:
        nothing of the episode is in it, only what its GUI actions do."""
        runtime = await super().start(task, backend)
        try:
            async with await ActionClient.over_exec(runtime) as gui:
                for request in journal:
                    await gui.request({**request, "tree": False})
            result = await runtime.exec(_READ_COMMAND, timeout=60, workdir="/", login=False)
        finally:
            await runtime.stop()
        return _verdict(task, result)

    async def oracle(self, task: Task, runtime: Runtime) -> ExecResult:
        """Solve the task through the action server, as an agent would (click, type, drag...)."""
        spec = self.spec(task)
        try:
            async with await self.actions(runtime) as gui:
                final = await spec.oracle(gui, spec.params)
        except EnvError as e:
            return ExecResult(exit_code=1, stdout="", stderr=str(e))
        return ExecResult(exit_code=0, stdout=final.text())

    # -- in-process agents -----------------------------------------------------------------------
    def gymnasium(self, **options: Any) -> Any:
        """A :class:`~agentgym.envs.gui.gym.GuiGymEnv`: screenshots (and the app's accessible
        text) in, computer-use actions out."""
        from agentgym.envs.gui.gym import GuiGymEnv

        return GuiGymEnv(self, **options)
