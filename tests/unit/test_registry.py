"""The generic registry: ids, lazy entry points, plugins, suggestions, scoped overrides."""

from __future__ import annotations

import importlib.metadata
import sys
from typing import Any

import pytest

from agentgym import registries
from agentgym.errors import RegistryError
from agentgym.registries import Registry


def test_lazy_entry_point_imports_nothing_until_made() -> None:
    reg: Registry[Any] = Registry("widget", entry_point_group=None)
    sys.modules.pop("fractions", None)
    reg.register("demo/frac-v0", "fractions:Fraction", numerator=3, denominator=4)
    assert "fractions" not in sys.modules
    assert str(reg.make("demo/frac-v0")) == "3/4"
    assert str(reg.make("demo/frac-v0", denominator=8)) == "3/8"


@pytest.mark.parametrize("bad", ["noversion", "ns/name-v", "ns/name-vX", "a/b/c-v0", "ns/-v0"])
def test_invalid_ids_are_refused(bad: str) -> None:
    reg: Registry[Any] = Registry("widget", entry_point_group=None)
    with pytest.raises(RegistryError, match="namespace/name-vN"):
        reg.register(bad, "fractions:Fraction")


def test_unknown_id_suggests_the_nearest() -> None:
    reg: Registry[Any] = Registry("widget", entry_point_group=None)
    reg.register("terminal/hello-file-v0", "fractions:Fraction")
    with pytest.raises(RegistryError, match="Did you mean 'terminal/hello-file-v0'"):
        reg.make("terminal/hello-fle-v0")
    with pytest.raises(RegistryError, match="Did you mean 'terminal/hello-file-v0'"):
        reg.make("hello-file-v0")  # namespace forgotten
    with pytest.raises(LookupError):  # also the stdlib type it replaces
        reg.make("zzz/qqq-v9")


def test_duplicate_needs_override_and_scoped_override_restores() -> None:
    reg: Registry[Any] = Registry("widget", entry_point_group=None)
    reg.register("demo/x-v0", "fractions:Fraction")
    reg.register("demo/x-v0", "fractions:Fraction")  # the very same spec again: a no-op
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("demo/x-v0", "decimal:Decimal")
    with reg.override("demo/x-v0", "decimal:Decimal"):
        assert type(reg.make("demo/x-v0", value="1.5")).__name__ == "Decimal"
    assert type(reg.make("demo/x-v0")).__name__ == "Fraction"
    with reg.override("demo/new-v0", "decimal:Decimal"):
        assert "demo/new-v0" in reg
    assert "demo/new-v0" not in reg


def test_plugins_register_through_entry_point_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = importlib.metadata.EntryPoint(name="acme/agent-v1", value="fractions:Fraction", group="agentgym.test")

    def fake(group: str | None = None, **_: Any) -> Any:
        return [ep] if group == "agentgym.test" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    reg: Registry[Any] = Registry("harness", entry_point_group="agentgym.test")
    assert reg.ids() == ["acme/agent-v1"]
    assert str(reg.make("acme/agent-v1", numerator=2)) == "2"


def test_builtins_are_registered_through_the_same_registries() -> None:
    assert "grpo" in registries.estimators and "gigpo" in registries.estimators
    assert "ppo-clip" in registries.losses
    assert "agentgym/react-v0" in registries.harnesses
    assert any(i.startswith("terminal/") for i in registries.envs.ids())
    assert "agentgym/embedded-v0" in registries.engines


def test_errors_are_picklable_and_typed() -> None:
    import pickle

    from agentgym.errors import ExecTimeout, ProxyError

    e = pickle.loads(pickle.dumps(ProxyError("bad", status=404, code="x", param="p")))
    assert (e.message, e.status, e.code, e.param) == ("bad", 404, "x", "p")
    assert isinstance(ExecTimeout("t"), TimeoutError) and ExecTimeout.boundary == "runtime"
