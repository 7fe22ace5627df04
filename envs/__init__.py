"""Environment families and their task suites (installed as ``agentgym.envs``).

Built-in suites register here through the same call users use. Registering is lazy: it only
lists directories, and nothing heavy is imported until an env is made.

Terminal tasks (Harbor layout, :mod:`agentgym.envs.harbor`), all in ``envs/terminal/tasks/``:

- ``terminal/all-v0`` — every built-in terminal task (files, scripting, git, permissions,
  sqlite, services, C builds, archives...);
- ``terminal/basic-v0`` — five of them (:data:`BASIC_TASKS`), four of which run on the local
  runtime: the quickstart's suite, kept fixed so that its runs stay comparable;
- ``terminal/<task>-v0`` — one task (for example ``terminal/hello-file-v0``), an env whose
  ``tasks()`` holds just that task. ``registries.envs.make("terminal/all-v0",
  task_ids=["hello-file"])`` selects tasks the same way.

GUI tasks (:mod:`agentgym.envs.gui`), apps on a virtual display acted on with mouse and keyboard:

- ``gui/all-v0`` — a Tk form, a Tk to-do list and a web shop in chromium;
- ``gui/<task>-v0`` — one of them (``gui/tk-form-v0``, ``gui/tk-todo-v0``, ``gui/web-cart-v0``).
  ``agentgym.make`` gives them as image observations (screenshots) and computer-use actions.

SWE-bench instances (:mod:`agentgym.envs.swe`):

- ``swe/basic-v0`` — the built-in instances in ``envs/swe/data/instances.jsonl``;
- ``swe/<instance_id>-v0`` — one of them (for example ``swe/agentgym__textkit-7-v0``).
  A user's own SWE-bench-style file needs no id: ``SWEEnv(path="my.jsonl")``.

Task sources (:func:`agentgym.sources.register_source`): a directory of Harbor or
Terminal-Bench 1 tasks is read by ``HarborEnv``, a SWE-bench-style ``.json``/``.jsonl`` file by
``SWEEnv``, so ``--env ./my-tasks`` and ``--env instances.jsonl`` work wherever an id does.
"""

from __future__ import annotations

import json
from pathlib import Path

from agentgym import registries
from agentgym.sources import TaskSource, register_source

TERMINAL_TASKS = Path(__file__).parent / "terminal" / "tasks"
"""The built-in terminal tasks (Harbor layout)."""
BASIC_TASKS = ("fix-python-script", "hello-file", "leave-a-note", "log-report", "system-user")
"""The tasks of ``terminal/basic-v0``."""
SWE_INSTANCES = Path(__file__).parent / "swe" / "data" / "instances.jsonl"
"""The built-in SWE suite (SWE-bench schema, one instance per line)."""

GUI_TASKS = ("tk-form", "tk-todo", "web-cart")
"""The tasks of ``gui/all-v0`` (:data:`agentgym.envs.gui.TASKS`; listed here so that registering
imports nothing)."""

__all__ = ["BASIC_TASKS", "GUI_TASKS", "SWE_INSTANCES", "TERMINAL_TASKS"]


register_source(TaskSource(
    "harbor", "agentgym.envs.harbor:HarborEnv", markers=("task.toml", "instruction.md", "task.yaml"),
    description="Harbor tasks (task.toml) and Terminal-Bench 1 tasks (task.yaml)"))
register_source(TaskSource(
    "swe", "agentgym.envs.swe:SWEEnv", suffixes=(".jsonl", ".json"),
    description="SWE-bench-style instances (SWE-bench, SWE-Gym, SWE-smith rows)"))

registries.envs.register(
    "terminal/all-v0", "agentgym.envs.harbor:HarborEnv", path=str(TERMINAL_TASKS), env_id="terminal/all-v0",
    description="Every built-in terminal task in the Harbor layout (files, scripting, git, permissions, "
                "sqlite, services, C builds, archives).")
registries.envs.register(
    "terminal/basic-v0", "agentgym.envs.harbor:HarborEnv", path=str(TERMINAL_TASKS), task_ids=list(BASIC_TASKS),
    env_id="terminal/basic-v0",
    description="Five small terminal tasks in the Harbor layout (files, debugging, text processing, sysadmin).")
for _task_dir in sorted(TERMINAL_TASKS.iterdir()) if TERMINAL_TASKS.is_dir() else []:
    if (_task_dir / "task.toml").is_file():
        registries.envs.register(
            f"terminal/{_task_dir.name}-v0", "agentgym.envs.harbor:HarborEnv", path=str(TERMINAL_TASKS),
            task_ids=[_task_dir.name], env_id=f"terminal/{_task_dir.name}-v0",
            description=f"The {_task_dir.name} task of terminal/all-v0.")

registries.envs.register(
    "terminal/workspace-v0", "agentgym.envs.workspace:WorkspaceEnv", env_id="terminal/workspace-v0",
    description="Procedurally generated workspace tasks (one seed, one instance): two requirements each.")
registries.envs.register(
    "terminal/workspace-easy-v0", "agentgym.envs.workspace:WorkspaceEnv", requirements=1,
    env_id="terminal/workspace-easy-v0", description="Workspace tasks with one requirement each.")
registries.envs.register(
    "terminal/workspace-hard-v0", "agentgym.envs.workspace:WorkspaceEnv",
    kinds=("dir", "file", "empty", "python", "word", "nested"), env_id="terminal/workspace-hard-v0",
    description="Workspace tasks with two requirements from all six kinds (words, nested files).")
registries.envs.register(
    "terminal/workspace-team-v0", "agentgym.envs.workspace:WorkspaceEnv", requirements=3,
    env_id="terminal/workspace-team-v0",
    description="Workspace tasks with three independent requirements, one list item each: one worker per "
                "requirement for a planner (agentgym/planner-v0, M-GRPO).")

registries.envs.register(
    "swe/basic-v0", "agentgym.envs.swe:SWEEnv", env_id="swe/basic-v0",
    description="SWE-bench instances over small Python repositories, graded by swebench's parser.")
for _line in SWE_INSTANCES.read_text().splitlines() if SWE_INSTANCES.is_file() else []:
    _instance_id = json.loads(_line)["instance_id"] if _line.strip() else None
    if _instance_id:
        registries.envs.register(
            f"swe/{_instance_id}-v0", "agentgym.envs.swe:SWEEnv", instance_ids=[_instance_id],
            env_id=f"swe/{_instance_id}-v0", description=f"The {_instance_id} instance of swe/basic-v0.")

registries.envs.register(
    "gui/all-v0", "agentgym.envs.gui:GuiEnv", env_id="gui/all-v0",
    description="GUI tasks on Xvfb: a Tk form, a Tk to-do list, a web shop in chromium (screenshots in, "
                "click/type/key/scroll/drag out).")
for _gui_task in GUI_TASKS:
    registries.envs.register(
        f"gui/{_gui_task}-v0", "agentgym.envs.gui:GuiEnv", task_ids=[_gui_task], env_id=f"gui/{_gui_task}-v0",
        description=f"The {_gui_task} task of gui/all-v0.")
