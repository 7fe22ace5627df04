"""Where an environment comes from: one function turns what a user typed into an :class:`Env`.

:func:`env_from` is the one place ``--env`` (``agentgym rollout``, ``train``, ``check env``,
``prebuild``, ``envs show``), ``TrainConfig.env``, ``RolloutConfig.env`` and
:func:`agentgym.make` are resolved. It accepts, in this order:

1. an :class:`Env` (returned as it is);
2. a path that exists: a **directory** holding a task (Harbor's ``task.toml``/``instruction.md``,
   Terminal-Bench 1's ``task.yaml``) or whose subdirectories do, or a **file** of SWE-bench-style
   instances (``.json``/``.jsonl``); the loaders are found through :data:`SOURCES`;
3. ``package.module:attr``: an :class:`Env` subclass, a factory or an instance in an importable
   module (so an env defined in your own code works from the command line, across processes);
4. a registered id (``terminal/basic-v0``; see ``agentgym envs list``).

A target that matches none raises :class:`~agentgym.errors.EnvError` saying what was tried. The
env's task list is read once here, so a malformed suite fails before any model is loaded.

Task sources register like everything else (:func:`register_source`): built-in ones in
``agentgym.envs``, by ``"module:Class"`` strings, so the core never imports ``envs/``.

>>> env = env_from("terminal/hello-file-v0")
>>> [t.id for t in env.tasks()]
['hello-file']
>>> env_from("terminal/helo-file-v0")
Traceback (most recent call last):
...
agentgym.errors.EnvError: 'terminal/helo-file-v0' is not an existing path, not a 'module:attr', and not a registered env id: unknown env id 'terminal/helo-file-v0'. Did you mean 'terminal/hello-file-v0'?
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentgym.errors import EnvError, RegistryError

if TYPE_CHECKING:
    from agentgym.env import Env

__all__ = ["SOURCES", "TaskSource", "env_from", "register_source", "source_for"]

_MODULE_ATTR = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class TaskSource:
    """A kind of task collection on disk and the env class that reads it.

    ``entry_point`` (``"module:Class"``) is called as ``factory(path=..., env_id=...)``.
    A directory matches when it, or one of its subdirectories, holds one of ``markers``; a file
    matches by one of ``suffixes``.
    """

    name: str
    entry_point: str
    markers: tuple[str, ...] = ()
    """File names that make a directory a task of this source."""
    suffixes: tuple[str, ...] = ()
    """File name endings of a file this source reads (``.jsonl``)."""
    description: str = ""

    def matches(self, path: Path) -> bool:
        if path.is_file():
            return bool(self.suffixes) and path.name.lower().endswith(self.suffixes)
        if not self.markers or not path.is_dir():
            return False
        if any((path / m).is_file() for m in self.markers):
            return True
        try:
            children = [c for c in path.iterdir() if c.is_dir()]
        except OSError:
            return False
        return any((c / m).is_file() for c in children for m in self.markers)


SOURCES: list[TaskSource] = []
"""Registered task sources, tried in order (see :func:`register_source`)."""
_lock = threading.Lock()


def register_source(source: TaskSource) -> None:
    """Add (or replace, by ``name``) a task source; later registrations of a new name are tried
    after the earlier ones."""
    with _lock:
        for i, known in enumerate(SOURCES):
            if known.name == source.name:
                SOURCES[i] = source
                return
        SOURCES.append(source)


def _ensure_builtins() -> None:
    # The built-in sources register in agentgym.envs, which the env registry imports on first use.
    from agentgym import registries

    registries.envs.ids()


def source_for(path: str | os.PathLike[str]) -> TaskSource | None:
    """The first registered source that reads ``path``, or ``None``."""
    _ensure_builtins()
    p = Path(path)
    return next((s for s in SOURCES if s.matches(p)), None)


def _looks_like_path(target: str) -> bool:
    return target.startswith(("/", "./", "../", "~")) or target in (".", "..") or \
        target.endswith((".json", ".jsonl", "/")) or os.sep + os.sep in target


def env_from(target: str | os.PathLike[str] | Env, *, validate: bool = True, **kwargs: Any) -> Env:
    """The environment ``target`` names (see the module docstring); ``kwargs`` go to its factory.

    With ``validate`` (the default) the env's tasks are read now, so a broken suite or file fails
    here, with the loader's message, and an env without tasks is refused. Warnings about fields
    agentgym does not honour (:meth:`Env.notes`) are issued once per env.
    """
    from agentgym.env import Env

    if isinstance(target, Env):
        return target
    text = os.fspath(target)
    path = Path(text).expanduser()
    env: Any
    if path.exists():
        source = source_for(path)
        if source is None:
            _ensure_builtins()
            kinds = "; ".join(f"{s.name}: {_describe(s)}" for s in SOURCES)
            raise EnvError(f"{text} exists but is not a task collection agentgym reads ({kinds})")
        from agentgym.registries import load_entry_point

        factory = load_entry_point(source.entry_point)
        env = factory(path=str(path.absolute()), **{"env_id": text, **kwargs})
    elif _MODULE_ATTR.match(text):
        from agentgym.registries import load_entry_point

        try:
            obj = load_entry_point(text)
        except (ImportError, AttributeError, RegistryError) as e:
            raise EnvError(f"cannot load the env {text!r}: {type(e).__name__}: {e}") from e
        env = obj(**kwargs) if callable(obj) and not isinstance(obj, Env) else obj
    elif _looks_like_path(text):
        raise EnvError(f"{text}: no such file or directory (expected a task directory, a directory of tasks, "
                       "or a SWE-bench-style .json/.jsonl file)")
    else:
        from agentgym import registries

        try:
            env = registries.envs.make(text, **kwargs)
        except RegistryError as e:
            raise EnvError(f"{text!r} is not an existing path, not a 'module:attr', and not a registered env id: "
                           f"{e}") from e
    if not isinstance(env, Env):
        raise EnvError(f"{text!r} gave a {type(env).__name__}, not an agentgym.env.Env")
    if validate:
        tasks = env.tasks()
        if not tasks:
            raise EnvError(f"{text}: the env {env.id!r} has no tasks")
        notes = sorted({line for t in tasks for line in env.notes(t)})
        if notes:
            shown = "; ".join(notes[:8]) + (f"; ... ({len(notes)} in all; `agentgym envs show` lists them)"
                                            if len(notes) > 8 else "")
            warnings.warn(f"{env.id}: not honoured by agentgym: {shown}", stacklevel=2)
        blocked = [(t.id, str(t.metadata.get("unsupported"))) for t in tasks if t.metadata.get("unsupported")]
        if blocked:
            shown = "; ".join(f"{tid} ({why})" for tid, why in blocked[:5]) + (" ..." if len(blocked) > 5 else "")
            warnings.warn(f"{env.id}: {len(blocked)} task(s) cannot run: {shown}", stacklevel=2)
    return env


def _describe(source: TaskSource) -> str:
    parts: list[str] = []
    if source.markers:
        parts.append("a directory with " + " or ".join(source.markers) + " (or of such directories)")
    if source.suffixes:
        parts.append("a " + "/".join(source.suffixes) + " file")
    return ", ".join(parts) or source.description

