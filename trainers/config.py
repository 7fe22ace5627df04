"""The training run's configuration: one TOML file, any key overridable from the command line.

::

    # examples/train/tiny-cpu.toml
    model = "tiny"
    env = "terminal/workspace-v0"
    estimator = "gigpo"
    iterations = 20
    [estimator_config]
    mode = "mean_std_norm"

``agentgym train --config examples/train/tiny-cpu.toml --set estimator=grpo --set iterations=2
--set loss_config.eps_hi=0.28`` reads the file, then applies each ``--set key=value`` (the value
is parsed as TOML, so ``2`` is an int, ``[1, 2]`` a list, and a bare word a string). Unknown keys
are refused with the nearest known one.

>>> cfg = apply_overrides(TrainConfig(), ["estimator=gigpo", "iterations=3", "estimator_config.omega=0.5"])
>>> cfg.estimator, cfg.iterations, cfg.estimator_config
('gigpo', 3, {'omega': 0.5})
>>> apply_overrides(TrainConfig(), ["iteration=3"])
Traceback (most recent call last):
...
agentgym.errors.ConfigError: unknown training config key 'iteration'. Did you mean 'iterations'?
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError
from agentgym.types import StopReason

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

__all__ = ["INFRA_STOP_REASONS", "TrainConfig", "apply_overrides", "load_config"]

INFRA_STOP_REASONS = tuple(r.value for r in StopReason if r.outside_the_agent)
"""Episodes that ended for reasons outside the agent: the sandbox failed to start, the engine
failed, or the verifier could not score. They are unscorable, so by default they are left out
of groups and of the baseline, never trained as reward 0."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Defaults train the tiny model on CPU."""

    # -- what to train, on what --------------------------------------------------------------
    model: str = "tiny"
    """The policy: ``tiny``, a checkpoint directory, or ``vllm:<url>:<checkpoint>`` (the trainer
    loads the checkpoint; the vLLM server serves it and is sent new weights)."""
    env: str = "terminal/workspace-v0"
    """A registered env id, a task directory or a directory of tasks (Harbor or Terminal-Bench 1),
    a SWE-bench-style ``.json``/``.jsonl`` file, or ``module:attr`` (:func:`agentgym.env_from`)."""
    task_ids: list[str] | None = None
    """Train on these tasks only (default: the whole suite)."""
    harness: str = "agentgym/react-v0"
    harness_kwargs: dict[str, Any] = field(default_factory=dict)
    runtime: str = "auto"
    """``docker``, ``local`` or ``auto``."""
    device: str = "cpu"
    """Where the trainer's copy of the policy runs (``cpu``, ``cuda``); the embedded engine too."""

    # -- rollouts ------------------------------------------------------------------------------
    iterations: int = 10
    tasks_per_iteration: int = 4
    group_size: int = 8
    """Samples per task: the group of GRPO-style estimators."""
    concurrency: int = 8
    warm_pool: int = 0
    """Sandboxes started ahead of the episodes (``RolloutConfig.warm_pool``; 0: none)."""
    overprovision: float = 0.0
    """Extra episodes per group, the long tail cancelled once ``group_size`` ended
    (``RolloutConfig.overprovision``; cancelled episodes are not trained: ``drop_stop_reasons``)."""
    ray_workers: int = 0
    """Run each iteration's rollouts on this many Ray actors, each with its own engine (sent
    every weight update), sandboxes and proxy (:mod:`agentgym.rollout.distributed`); 0: in this
    process. ``concurrency`` is then per worker."""
    ray_address: str | None = None
    """The Ray cluster to join (``auto``, ``host:port``); ``None``: a Ray instance on this machine."""
    max_steps: int | None = 10
    """Agent steps per episode (``None``: each task's own limit)."""
    max_tokens: int = 96
    """Completion budget per call (pinned: a harness asking for more gets this)."""
    max_model_len: int = 4096
    temperature: float = 1.0
    """Sampling temperature, pinned on every call whatever the harness asks (the trainer's
    logprobs must describe the distribution the tokens came from)."""
    top_p: float = 1.0

    # -- the update ----------------------------------------------------------------------------
    estimator: str = "grpo"
    estimator_config: dict[str, Any] = field(default_factory=dict)
    loss: str = "ppo-clip"
    loss_config: dict[str, Any] = field(default_factory=dict)
    echo: dict[str, Any] | None = None
    """ECHO observation loss: ``EchoConfig`` fields (``{}`` for the reference defaults); ``None`` off."""
    multi_agent: dict[str, Any] | None = None
    """Train the main agent *and* its sub-agents (M-GRPO): ``MultiAgentConfig`` fields
    (``subagents_per_main``, ``rewards``, ``policies``, ``roles``; :mod:`agentgym.trainers.multiagent`).
    ``None``: the defaults when ``estimator = "mgrpo"``, else the main agent only."""
    rollout: str = "independent"
    """How an iteration's ``tasks_per_iteration x group_size`` episodes are spent: ``independent``
    (``group_size`` fresh episodes per task) or ``tree`` (fresh roots, then branches from their
    prefixes, replayed through the proxy: :mod:`agentgym.trainers.tree_rollout`; pair it with
    ``estimator = "tree"``)."""
    tree: dict[str, Any] = field(default_factory=dict)
    """``rollout = "tree"`` settings: ``TreeRolloutConfig`` fields (``root_fraction``, ``waves``,
    ``min_roots_per_task``, ``max_per_prefix``, ``prior_weight``, ``prior_success``, ``predictor_decay``)."""
    skip_groups_without_signal: bool = True
    """Leave out groups whose episodes all got the same reward (no group-relative signal), as
    DAPO's dynamic sampling and verl-agent do; they are counted in the metrics."""
    drop_stop_reasons: list[str] = field(default_factory=lambda: [*INFRA_STOP_REASONS, StopReason.CANCELLED.value])
    """Episodes that ended so are not trained (see :data:`INFRA_STOP_REASONS`, and ``cancelled``:
    the long tail an over-provisioned rollout cut short); the agent's own
    failures (``harness_error``, ``timeout``, ``step_limit``...) are trained with their reward."""
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: float = 1.0
    epochs: int = 1
    """Passes over each iteration's batch."""
    mini_batches: int = 1
    """Optimizer steps per epoch (the batch's trajectories split evenly)."""
    micro_batch_size: int | None = 4
    """Sequences per forward pass (memory, not maths)."""
    max_staleness: int = 0
    """Refuse action tokens sampled more than this many policy versions ago (counted)."""

    # -- bookkeeping ---------------------------------------------------------------------------
    out: str = "runs/train"
    save_every: int = 1
    """Save a checkpoint every this many iterations (the last one always)."""
    seed: int = 0
    heldout_tasks: int = 0
    """Tasks kept out of training; with ECHO on, the observation-token cross-entropy of their
    trajectories (sampled once, before training) is logged before training and after each update."""
    progress: bool = True
    tensorboard: bool = True
    weight_sync_timeout_s: float = 900.0
    """How long pushing new weights to the engine may take before the run fails loudly."""

    def __post_init__(self) -> None:
        for name in ("iterations", "tasks_per_iteration", "group_size", "concurrency", "epochs", "mini_batches",
                     "save_every", "max_tokens"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_staleness < 0:
            raise ConfigError(f"max_staleness must be >= 0, got {self.max_staleness}")
        if self.temperature <= 0:
            raise ConfigError("temperature must be > 0: greedy samples have no logprobs to train on")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.rollout not in ("independent", "tree"):
            raise ConfigError(f"rollout must be 'independent' or 'tree', got {self.rollout!r}")


def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(_fields()), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(sorted(_fields()))}."
    return ConfigError(f"unknown training config key {key!r}.{hint}")


def from_mapping(data: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from a mapping of its fields (unknown keys refused), on top of ``base``."""
    fields = _fields()
    for key in data:
        if key not in fields:
            raise _unknown(key)
    try:
        return dataclasses.replace(base or TrainConfig(), **dict(data))
    except TypeError as e:
        raise ConfigError(f"bad training config: {e}") from e


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a TOML file (or start from the defaults) and apply ``--set`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"training config {p} does not exist")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from e
    return apply_overrides(from_mapping(data), overrides)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def apply_overrides(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Apply ``key=value`` overrides; ``a.b=value`` sets key ``b`` of the table ``a``."""
    data = dataclasses.asdict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key = key.strip()
        value = _parse_value(raw.strip())
        head, _, rest = key.partition(".")
        if head not in data:
            raise _unknown(head)
        if rest:
            table = data[head] if isinstance(data[head], dict) else {}
            data[head] = {**table, rest: value}
        else:
            data[head] = value
    return from_mapping(data)
