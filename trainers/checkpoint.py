"""Checkpoints of a training run: model, optimizer, RNG states, iteration and policy version.

``<out>/checkpoints/iter-00003/`` holds ``model/`` (a Hugging Face checkpoint, servable as is),
``optimizer.pt``, ``rng.pt`` and ``state.json``; a run with one policy per agent role also has
``agents/<role>/model/`` and ``agents/<role>/optimizer.pt`` for every role but the first. A checkpoint is written beside its final name
and renamed into place, and ``state.json`` is written last, so a ``kill -9`` at any moment
leaves either the previous checkpoint or the new one, never half of one.

>>> import tempfile, torch
>>> out = Path(tempfile.mkdtemp())
>>> model = torch.nn.Linear(2, 2)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> _ = save_checkpoint(out, iteration=0, policy_version=1, model=model, optimizer=opt)
>>> latest_checkpoint(out).name, read_state(latest_checkpoint(out))["policy_version"]
('iter-00000', 1)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from collections.abc import Mapping

    Policies = Mapping[str, tuple[torch.nn.Module, torch.optim.Optimizer]]
    """Role -> (model, optimizer) of a run with one policy per agent role."""

__all__ = ["capture_rng", "latest_checkpoint", "read_state", "restore_rng", "save_checkpoint"]

STATE = "state.json"


def capture_rng() -> dict[str, Any]:
    import numpy as np

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                             "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_policy(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, tokenizer: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_pretrained = getattr(model, "save_pretrained", None)
    if save_pretrained is not None:
        save_pretrained(directory / "model")
        if tokenizer is not None:
            tokenizer.save_pretrained(directory / "model")
    else:
        torch.save(model.state_dict(), directory / "model.pt")
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")


def save_checkpoint(out: Path, *, iteration: int, policy_version: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, tokenizer: Any = None, keep: int = 2,
                    extra: dict[str, Any] | None = None, agents: Policies | None = None) -> Path:
    """Write the checkpoint of ``iteration`` atomically; keep the newest ``keep``. ``agents``: the
    other roles' ``(model, optimizer)`` of a run with one policy per role."""
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter-{iteration:05d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _save_policy(tmp, model, optimizer, tokenizer)
    for role, (agent_model, agent_optimizer) in (agents or {}).items():
        _save_policy(tmp / "agents" / role, agent_model, agent_optimizer, tokenizer)
    torch.save(capture_rng(), tmp / "rng.pt")
    (tmp / STATE).write_text(json.dumps({"iteration": iteration, "policy_version": policy_version,
                                         "saved_at": time.time(), **(extra or {})}, indent=1))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("iter-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under ``<out>/checkpoints`` (``None`` if there is none)."""
    root = Path(out) / "checkpoints"
    done = sorted(p for p in root.glob("iter-*") if (p / STATE).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def read_state(checkpoint: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((checkpoint / STATE).read_text())
    return state


def load_into(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              agents: Policies | None = None) -> dict[str, Any]:
    """Load a checkpoint's weights, optimizer and RNG states (and the ``agents`` roles' policies);
    returns its state."""
    _load_policy(checkpoint, model, optimizer)
    for role, (agent_model, agent_optimizer) in (agents or {}).items():
        directory = checkpoint / "agents" / role
        if not directory.is_dir():
            raise RuntimeError(f"{checkpoint} has no policy for agent role {role!r}: it was saved by a run with "
                               "other roles or a shared policy")
        _load_policy(directory, agent_model, agent_optimizer)
    restore_rng(torch.load(checkpoint / "rng.pt", weights_only=False))
    return read_state(checkpoint)


def _load_policy(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    weights = checkpoint / "model.pt"
    if weights.is_file():
        model.load_state_dict(torch.load(weights, weights_only=True))
    else:
        from safetensors.torch import load_file

        files = sorted((checkpoint / "model").glob("*.safetensors"))
        state_dict: dict[str, torch.Tensor] = {}
        for f in files:
            state_dict.update(load_file(str(f)))
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        # tied weights (lm_head = embeddings) are saved once: anything else missing is an error
        real_missing = [k for k in missing if not k.endswith("lm_head.weight")]
        if real_missing or unexpected:
            raise RuntimeError(f"{checkpoint}: weights do not match the model "
                               f"(missing {real_missing[:5]}, unexpected {unexpected[:5]})")
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=False))
