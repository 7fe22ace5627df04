"""The registries, one per extension point, and the one generic :class:`Registry` they share.

Ids look like ``namespace/name-vN`` (the namespace is optional: ``name-vN``; estimators and
losses use plain names), entry points are lazy ``"module:attr"`` strings so registering imports
nothing heavy, installed plugins register through Python entry-point groups
(``agentgym.envs``, ``agentgym.harnesses``, ``agentgym.engines``, ``agentgym.estimators``,
``agentgym.losses``), and an unknown id suggests the nearest one. Built-ins register through the
same call users use.

>>> from agentgym import registries
>>> "terminal/hello-file-v0" in registries.envs
True
>>> reg: Registry[object] = Registry("widget", entry_point_group=None)
>>> reg.register("demo/counter-v0", "collections:Counter")
>>> type(reg.make("demo/counter-v0")).__name__
'Counter'
>>> reg.make("demo/countr-v0")
Traceback (most recent call last):
...
agentgym.errors.RegistryError: unknown widget id 'demo/countr-v0'. Did you mean 'demo/counter-v0'?
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agentgym.errors import RegistryError

if TYPE_CHECKING:
    from agentgym.engines.base import Engine
    from agentgym.env import Env
    from agentgym.harness import Harness

T = TypeVar("T")

ID_RE = re.compile(r"^(?:(?P<namespace>[A-Za-z0-9_.-]+)/)?(?P<name>[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*?)-v(?P<version>\d+)$")
# Estimators and losses are plain names ("grpo", "ppo-clip"); allow those with `versioned=False`.
PLAIN_RE = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)?$")


def load_entry_point(target: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise RegistryError(f"entry point {target!r} must look like 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Spec(Generic[T]):
    """What an id resolves to."""

    id: str
    entry_point: str | Callable[..., T]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> Callable[..., T]:
        ep = self.entry_point
        return load_entry_point(ep) if isinstance(ep, str) else ep


class Registry(Generic[T]):
    """Maps ids to lazily-imported factories.

    Args:
        kind: what is registered, used in messages ("env", "harness", ...).
        entry_point_group: Python entry-point group scanned for installed plugins; each entry
            point's name is the id and its value the ``module:attr`` factory.
        builtins: module imported on first lookup; it registers the built-ins through the same
            :meth:`register` call users use.
        versioned: require ``namespace/name-vN`` ids (estimators and losses use plain names).
    """

    def __init__(self, kind: str, entry_point_group: str | None, builtins: str | None = None,
                 versioned: bool = True) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtins = builtins
        self.versioned = versioned
        self._specs: dict[str, Spec[T]] = {}
        self._loaded = False
        self._lock = threading.RLock()

    # -- registration -------------------------------------------------------------------------
    def register(self, id: str, entry_point: str | Callable[..., T], *, description: str = "",
                 override: bool = False, **kwargs: Any) -> None:
        """Register ``id``. ``kwargs`` are default arguments passed to the factory by :meth:`make`.
        Registering the very same spec again is a no-op; a different one needs ``override=True``."""
        pattern = ID_RE if self.versioned else PLAIN_RE
        if not pattern.match(id):
            form = "'namespace/name-vN' (for example 'terminal/hello-v0')" if self.versioned else "a plain name"
            raise RegistryError(f"invalid {self.kind} id {id!r}: expected {form}")
        spec = Spec(id=id, entry_point=entry_point, kwargs=dict(kwargs), description=description)
        with self._lock:
            existing = self._specs.get(id)
            if existing is not None and not override:
                if existing == spec:  # the same module imported twice (e.g. by a tool walking sources)
                    return
                raise RegistryError(f"{self.kind} id {id!r} is already registered; pass override=True to replace it")
            self._specs[id] = spec

    def unregister(self, id: str) -> None:
        with self._lock:
            self._specs.pop(id, None)

    @contextlib.contextmanager
    def override(self, id: str, entry_point: str | Callable[..., T], **kwargs: Any) -> Iterator[None]:
        """Register ``id`` for the duration of a ``with`` block, restoring what was there before."""
        self._ensure_loaded()
        with self._lock:
            previous = self._specs.get(id)
            self.register(id, entry_point, override=True, **kwargs)
        try:
            yield
        finally:
            with self._lock:
                if previous is None:
                    self._specs.pop(id, None)
                else:
                    self._specs[id] = previous

    # -- lookup -------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            if self.builtins:
                importlib.import_module(self.builtins)
            if self.entry_point_group:
                for ep in importlib.metadata.entry_points(group=self.entry_point_group):
                    if ep.name not in self._specs:
                        self.register(ep.name, ep.value)

    def spec(self, id: str) -> Spec[T]:
        self._ensure_loaded()
        try:
            return self._specs[id]
        except KeyError:
            raise RegistryError(self._unknown_message(id)) from None

    def _unknown_message(self, id: str) -> str:
        known = sorted(self._specs)
        msg = f"unknown {self.kind} id {id!r}."
        close = difflib.get_close_matches(id, known, n=1, cutoff=0.6)
        if not close:  # match on the name alone: "hello-v0" for "terminal/hello-v0"
            by_name = {k.split("/")[-1]: k for k in known}
            close = [by_name[m] for m in difflib.get_close_matches(id.split("/")[-1], list(by_name), n=1, cutoff=0.6)]
        if close:
            msg += f" Did you mean {close[0]!r}?"
        elif known:
            msg += f" Registered: {', '.join(known[:12])}{' ...' if len(known) > 12 else ''}."
        return msg

    def make(self, id: str, **kwargs: Any) -> T:
        """Build the registered object, with the registered defaults overridden by ``kwargs``."""
        spec = self.spec(id)
        factory = spec.load()
        return factory(**{**spec.kwargs, **kwargs})

    def get(self, id: str) -> Callable[..., T]:
        """The factory itself (for registered functions such as estimators)."""
        return self.spec(id).load()

    def ids(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._specs)

    def items(self) -> list[tuple[str, Spec[T]]]:
        self._ensure_loaded()
        return sorted(self._specs.items())

    def __contains__(self, id: object) -> bool:
        self._ensure_loaded()
        return id in self._specs

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._specs)


envs: Registry[Env] = Registry("env", "agentgym.envs", builtins="agentgym.envs")
harnesses: Registry[Harness] = Registry("harness", "agentgym.harnesses", builtins="agentgym.harnesses")
engines: Registry[Engine] = Registry("engine", "agentgym.engines", builtins="agentgym.engines")
estimators: Registry[Any] = Registry(
    "advantage estimator", "agentgym.estimators", builtins="agentgym.trainers.advantages", versioned=False
)
"""Advantage estimators: ``estimator(batch: StepBatch, config) -> AdvantageResult`` (see
:mod:`agentgym.trainers.advantages`)."""
losses: Registry[Any] = Registry("loss", "agentgym.losses", builtins="agentgym.trainers.losses", versioned=False)
"""Policy losses (see :mod:`agentgym.trainers.losses`)."""

__all__ = ["Registry", "Spec", "engines", "envs", "estimators", "harnesses", "load_entry_point", "losses"]
