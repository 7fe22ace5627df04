"""The training loop: rollouts with the current policy -> trajectories -> step-level advantages ->
optimizer updates -> new weights in the serving engine -> the next rollouts.

::

    agentgym train --config examples/train/tiny-cpu.toml --set estimator=gigpo --set out=runs/x

    from agentgym.trainers.train import train
    from agentgym.trainers.config import load_config
    result = train(load_config("examples/train/tiny-cpu.toml", ["iterations=2"]))

Each iteration ``i``:

1. picks ``tasks_per_iteration`` tasks (seeded) and runs ``group_size`` episodes of each through
   the rollout service and the proxy, into ``<out>/rollouts/iter-<i>/`` (its own journal: an
   interrupted iteration resumes there), sampling pinned to the run's temperature / top-p;
2. drops episodes that ended for reasons outside the agent (:data:`INFRA_STOP_REASONS`: they are
   unscorable, not reward 0) and, by default, groups whose episodes all got the same reward;
3. collates the rest into a :class:`StepBatch`, refuses action tokens older than
   ``max_staleness`` policy versions, computes advantages with the configured estimator;
4. runs ``epochs`` x ``mini_batches`` optimizer steps of :func:`train_step` (no step at all when
   nothing carries a learning signal: an optimizer's momentum would move the weights anyway);
5. pushes the new weights to the engine as policy version ``v + 1`` (bounded wait, loud failure);
6. logs metrics (``metrics.jsonl``, TensorBoard, one line on stdout) and checkpoints every
   ``save_every`` iterations (``trainers.checkpoint``).

With ``estimator = "mgrpo"`` (or a ``[multi_agent]`` table) step 2 takes every agent's
trajectories, not only the main agent's: sub-agents get the reference rewards from their main
rollout's outcome and each main rollout keeps exactly ``subagents_per_main`` of them
(:mod:`agentgym.trainers.multiagent`). One policy is shared by every agent, or each role in
``multi_agent.roles`` trains its own model and optimizer and is served by its own embedded engine
(``policies = "per-agent"``: an :class:`~agentgym.engines.routed.AgentRoutedEngine`, checkpoints
under ``agents/<role>/``).

With ``rollout = "tree"`` step 1 spends the same ``tasks_per_iteration x group_size`` episodes as
trees: fresh roots split by ``V_root``, then branches from their turn-level prefixes chosen by
``V_pref``, each replaying its prefix's recorded calls through the proxy in a fresh runtime
(:mod:`agentgym.trainers.tree_rollout`; ``metrics["tree"]``); pair it with ``estimator = "tree"``.

Restarting the same command resumes from the newest checkpoint: the model, optimizer and RNG
states are restored, the engine gets the checkpoint's weights, rollouts of iterations after it
are set aside (their policy was never saved), and each iteration's update happens once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agentgym import registries
from agentgym.agents import agent_role
from agentgym.engines import engine_spec, load_engine
from agentgym.engines.base import Engine
from agentgym.engines.routed import AgentRoutedEngine
from agentgym.errors import ConfigError, EngineError
from agentgym.proxy.pipeline import PinnedSampling
from agentgym.rollout.branch import Branch
from agentgym.rollout.runner import RolloutConfig, RolloutResult, run_rollouts, select_tasks
from agentgym.runtime.base import RuntimeBackend
from agentgym.sources import env_from
from agentgym.trainers import checkpoint as ckpt
from agentgym.trainers.batch import StepBatch
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.losses.base import LossConfig
from agentgym.trainers.losses.echo import EchoConfig
from agentgym.trainers.metrics import MetricsLog, read_metrics
from agentgym.trainers.multiagent import MultiAgentConfig, multiagent_config, select_multiagent_groups
from agentgym.trainers.step import compute_token_logprobs, train_step
from agentgym.trainers.tree_rollout import SuccessPredictor, TreeRolloutConfig, tree_rollouts
from agentgym.types import Trajectory, TrajectoryGroup, group_by_task

__all__ = ["TrainResult", "heldout_obs_nll", "select_groups", "train", "train_async", "train_from"]


@dataclass(frozen=True)
class TrainResult:
    out: Path
    metrics: list[dict[str, Any]]
    """One entry per iteration, as in ``metrics.jsonl``."""
    policy_version: int
    resumed_from: int | None
    """The iteration of the checkpoint the run resumed from, if it did."""


PREDICTOR_FILE = "tree_predictor.json"
"""The tree rollouts' success predictor, saved with the run (``rollout = "tree"``)."""

Policy = tuple[torch.nn.Module, torch.optim.Optimizer]
"""A trained policy: the trainer's model and its optimizer."""


@dataclass(frozen=True)
class TokenView:
    """A subset of a batch's sequences, for one optimizer step (what :func:`train_step` reads)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor
    obs_mask: torch.Tensor
    old_logprobs: torch.Tensor
    obs_body_mask: torch.Tensor | None = None


def select_groups(trajectories: Sequence[Trajectory], config: TrainConfig) -> tuple[list[TrajectoryGroup], dict[str, int]]:
    """The groups to train on, and counts of what was left out and why."""
    drop = set(config.drop_stop_reasons)
    kept = [t for t in trajectories if t.stop_reason.value not in drop]
    counts = {"episodes_dropped_infra": len(trajectories) - len(kept)}
    usable = [t for t in kept if t.segments and t.trained_tokens > 0]
    counts["episodes_without_tokens"] = len(kept) - len(usable)
    groups = group_by_task(usable)
    counts["groups"] = len(group_by_task(kept))
    with_signal = [g for g in groups if len(g.trajectories) > 1 and len(set(g.rewards)) > 1]
    counts["groups_with_signal"] = len(with_signal)
    chosen = with_signal if config.skip_groups_without_signal else groups
    counts["groups_trained"] = len(chosen)
    return chosen, counts


def _view(batch: StepBatch, seqs: torch.Tensor, action: torch.Tensor) -> TokenView:
    return TokenView(input_ids=batch.input_ids[seqs], attention_mask=batch.attention_mask[seqs],
                     action_mask=action[seqs], obs_mask=batch.obs_mask[seqs], old_logprobs=batch.old_logprobs[seqs],
                     obs_body_mask=None if batch.obs_body_mask is None else batch.obs_body_mask[seqs])


def heldout_obs_nll(model: torch.nn.Module, trajectories: Sequence[Trajectory], *, pad_id: int,
                    temperature: float = 1.0, device: str = "cpu") -> float:
    """Mean cross-entropy (nats per token) of the model on the observation tokens
    (``obs_mask``) of ``trajectories``: how well it predicts what the environment says."""
    groups = group_by_task([t for t in trajectories if t.segments])
    if not groups:
        return float("nan")
    batch = StepBatch.from_groups(groups, pad_id=pad_id)
    total, count = 0.0, 0
    with torch.no_grad():
        for lo in range(0, batch.input_ids.shape[0], 4):
            ids, att = batch.input_ids[lo:lo + 4].to(device), batch.attention_mask[lo:lo + 4].to(device)
            lp = compute_token_logprobs(model, ids, att, temperature)
            mask = batch.obs_mask[lo:lo + 4].to(device) > 0
            total += float(-lp[mask].sum())
            count += int(mask.sum())
    return total / count if count else float("nan")


def _trainer_checkpoint(model: str) -> str:
    _, kwargs = engine_spec(model)
    path = kwargs.get("tokenizer_path") or kwargs.get("model")
    if not path:
        raise ConfigError(f"model {model!r}: the trainer needs a checkpoint directory to load")
    return str(path)


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    b1, b2 = config.betas
    return torch.optim.AdamW(params, lr=config.lr, betas=(b1, b2), weight_decay=config.weight_decay)


def _check_same_run(out: Path, config: TrainConfig) -> None:
    """Refuse to resume a run directory that was made with a different configuration."""
    saved = out / "config.json"
    mine = dataclasses.asdict(config)
    if saved.is_file():
        theirs = json.loads(saved.read_text())
        free = {"iterations", "progress", "tensorboard", "save_every", "weight_sync_timeout_s", "concurrency",
                "ray_workers", "ray_address"}  # how rollouts run, not what is trained
        diff = sorted(k for k in mine if k not in free and theirs.get(k) != mine[k])
        if diff:
            raise ConfigError(f"{out} holds a run with a different configuration ({', '.join(diff)}); "
                              "resume it with the same settings or choose another out directory")
    saved.write_text(json.dumps(mine, indent=1, sort_keys=True))


def _set_aside_later_rollouts(out: Path, first_stale: int) -> list[str]:
    """Move rollout directories of iterations >= ``first_stale`` away: their policy was never
    checkpointed, so they cannot be resumed."""
    moved = []
    root = out / "rollouts"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for d in sorted(root.glob("iter-*")) if root.is_dir() else []:
        if d.name[5:].isdigit() and int(d.name[5:]) >= first_stale:
            target = root / f"discarded-{stamp}" / d.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(d), target)
            moved.append(d.name)
    return moved


async def _push_weights(engine: Engine, model: torch.nn.Module, version: int, timeout_s: float) -> float:
    t = time.time()
    state = {k: v.detach() for k, v in model.state_dict().items()}
    try:
        await asyncio.wait_for(engine.update_weights(state, version), timeout=timeout_s)
    except asyncio.TimeoutError as e:
        raise EngineError(f"pushing policy version {version} to the {engine.name} engine took more than "
                          f"{timeout_s:.0f}s (weight_sync_timeout_s); the run stops rather than train on a "
                          "policy the engine may not serve") from e
    if engine.policy_version != version:
        raise EngineError(f"the engine reports policy version {engine.policy_version} after an update to {version}")
    return time.time() - t


async def _push_policies(engine: Engine, model: torch.nn.Module, policies: Mapping[str, Policy] | None,
                         version: int, timeout_s: float) -> float:
    """Push the shared model, or every role's model to its role's engine (all as ``version``)."""
    if policies is None:
        return await _push_weights(engine, model, version, timeout_s)
    if not isinstance(engine, AgentRoutedEngine):
        raise ConfigError("one policy per agent role needs an AgentRoutedEngine to serve them")
    return sum([await _push_weights(engine.engine_for(role), m, version, timeout_s)
                for role, (m, _) in policies.items()])


@dataclass
class _Rollouts:
    """Where an iteration's rollouts run and where new weights go: in this process (``engine``,
    ``backend``) or on Ray workers (``pool``: each worker's engine gets every update too)."""

    engine: Engine
    backend: RuntimeBackend | None
    pool: Any = None
    """A :class:`~agentgym.rollout.distributed.RayRolloutPool`, or ``None``."""

    async def run(self, cfg: RolloutConfig) -> RolloutResult:
        if self.pool is not None:
            result: RolloutResult = await self.pool.run(cfg)
            return result
        return await run_rollouts(cfg, self.engine, backend=self.backend)

    async def push(self, model: torch.nn.Module, policies: Mapping[str, Policy] | None, version: int,
                   timeout_s: float) -> float:
        seconds = await _push_policies(self.engine, model, policies, version, timeout_s)
        if self.pool is not None:
            t = time.time()
            await self.pool.update_weights({k: v.detach().cpu() for k, v in model.state_dict().items()}, version,
                                           timeout_s)
            seconds += time.time() - t
        return seconds


def _task_schedule(task_ids: Sequence[str], config: TrainConfig, iteration: int) -> list[str]:
    """The tasks of ``iteration``: a seeded draw without replacement, fresh each iteration."""
    rng = random.Random(config.seed * 7919 + iteration)
    k = min(config.tasks_per_iteration, len(task_ids))
    return rng.sample(list(task_ids), k)


def train(config: TrainConfig, *, engine: Engine | None = None, backend: RuntimeBackend | None = None) -> TrainResult:
    """Run (or resume) a training run; see the module docstring."""
    return asyncio.run(train_async(config, engine=engine, backend=backend))


def train_from(config: TrainConfig | str | Path | None = None, overrides: Sequence[str] = (),
               **kwargs: Any) -> TrainResult:
    """:func:`train` from a config, a TOML path or the defaults, with ``key=value`` overrides
    (what ``agentgym.train`` and ``agentgym train`` call)."""
    from agentgym.trainers.config import apply_overrides, load_config

    cfg = apply_overrides(config, overrides) if isinstance(config, TrainConfig) else load_config(config, overrides)
    return train(cfg, **kwargs)


async def train_async(config: TrainConfig, *, engine: Engine | None = None,
                      backend: RuntimeBackend | None = None) -> TrainResult:
    from transformers import AutoModelForCausalLM

    from agentgym.models.tiny import quiet_transformers

    quiet_transformers()
    # The environment first: a wrong id or path fails before anything is written or loaded.
    env = env_from(config.env)
    multi = multiagent_config(config.estimator, config.multi_agent)
    tree_config = TreeRolloutConfig.from_mapping(config.tree)  # checked even when unused: a typo is an error
    tree = tree_config if config.rollout == "tree" else None
    if tree is not None and multi is not None:
        raise ConfigError("rollout = 'tree' branches the main agent's episodes; it does not combine with "
                          "multi-agent training (mgrpo / [multi_agent]) yet")
    # one policy per role (the first role's is the run's `model`), or () for one shared policy
    roles: tuple[str, ...] = multi.roles if multi is not None and multi.policies == "per-agent" else ()
    engine_id, _ = engine_spec(config.model)
    if roles and engine_id != "agentgym/embedded-v0":
        raise ConfigError(f"multi_agent.policies = 'per-agent' serves each role from its own embedded engine; "
                          f"{config.model!r} is served by {engine_id} (one server per role is not wired up)")
    if config.ray_workers and roles:
        raise ConfigError("one policy per agent role does not run on Ray yet: drop ray_workers or "
                          "multi_agent.policies = 'per-agent'")
    if config.ray_workers and tree is not None:
        raise ConfigError("rollout = 'tree' replays calls kept in the run's directory: it does not run on Ray yet; "
                          "drop ray_workers")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_run(out, config)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    all_tasks = [t.id for t in select_tasks(env, config.task_ids)]
    if config.heldout_tasks >= len(all_tasks):
        raise ConfigError(f"heldout_tasks ({config.heldout_tasks}) leaves no task to train on ({len(all_tasks)} tasks)")
    owns_engine = engine is None
    if engine is None:
        kwargs = {"device": config.device} if engine_id == "agentgym/embedded-v0" else {}
        engine = (AgentRoutedEngine({role: load_engine(config.model, **kwargs) for role in roles}, default=roles[0])
                  if roles else load_engine(config.model, **kwargs))
    if roles and (not isinstance(engine, AgentRoutedEngine) or set(engine.engines) != set(roles)):
        raise ConfigError(f"multi_agent.policies = 'per-agent' needs an AgentRoutedEngine with one engine per "
                          f"role {list(roles)}")

    def new_policy() -> Policy:
        m = AutoModelForCausalLM.from_pretrained(_trainer_checkpoint(config.model), dtype=torch.float32)
        m.to(config.device)
        m.train()
        return m, _optimizer(config, m)

    pool = None
    try:
        if config.ray_workers:  # rollouts on Ray workers, each with its own engine (sent every update)
            from agentgym.rollout.distributed import RayOptions, RayRolloutPool

            pool = RayRolloutPool(config.model, config.runtime, RayOptions(workers=config.ray_workers,
                                                                            address=config.ray_address),
                                  concurrency=config.concurrency)
            await pool.start()
        return await _train(config, env, engine, _Rollouts(engine, backend, pool), roles, multi, tree, new_policy,
                            out)
    finally:
        if pool is not None:
            await pool.aclose()
        if owns_engine:
            await engine.aclose()


async def _train(config: TrainConfig, env: Any, engine: Engine, rollouts: _Rollouts, roles: Sequence[str],
                 multi: MultiAgentConfig | None, tree: TreeRolloutConfig | None, new_policy: Callable[[], Policy],
                 out: Path) -> TrainResult:
    all_tasks = [t.id for t in select_tasks(env, config.task_ids)]
    heldout_ids, train_ids = all_tasks[:config.heldout_tasks], all_tasks[config.heldout_tasks:]
    model, optimizer = new_policy()
    others: dict[str, Policy] = {role: new_policy() for role in roles[1:]}
    policies: dict[str, Policy] | None = {roles[0]: (model, optimizer), **others} if roles else None
    pad_id = engine.tokenizer.pad_token_id or 0
    loss_config = LossConfig(**config.loss_config) if config.loss_config else None
    echo = EchoConfig(**config.echo) if config.echo is not None else None

    start, version, resumed_from = 0, 0, None
    latest = ckpt.latest_checkpoint(out)
    if latest is not None:
        state = ckpt.load_into(latest, model, optimizer, agents=others)
        resumed_from = int(state["iteration"])
        start, version = resumed_from + 1, int(state["policy_version"])
        moved = _set_aside_later_rollouts(out, start + 1)
        print(f"resuming {out} after iteration {resumed_from} (policy version {version})"
              + (f"; set aside rollouts of {', '.join(moved)}" if moved else ""), flush=True)
        await rollouts.push(model, policies, version, config.weight_sync_timeout_s)
    log = MetricsLog(out, start_iteration=start, tensorboard=config.tensorboard, iterations=config.iterations)
    pinned = PinnedSampling(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens)

    def rollout_config(task_ids: Sequence[str], out_dir: Path, **extra: Any) -> RolloutConfig:
        return RolloutConfig(env=config.env if rollouts.pool is not None else env, harness=config.harness,
                             samples=config.group_size,
                             task_ids=list(task_ids), out_dir=str(out_dir), runtime=config.runtime,
                             concurrency=config.concurrency, max_steps=config.max_steps,
                             default_max_tokens=config.max_tokens, max_model_len=config.max_model_len,
                             progress=config.progress, harness_kwargs=dict(config.harness_kwargs),
                             pinned_sampling=pinned, warm_pool=config.warm_pool,
                             overprovision=config.overprovision, **extra)

    predictor = SuccessPredictor(tree) if tree is not None else None
    if predictor is not None:
        predictor.load(out / PREDICTOR_FILE)

    heldout: list[Trajectory] = []
    if echo is not None and heldout_ids:
        # Sampled once with the initial policy (resumable; a resumed run reads them back).
        heldout = (await rollouts.run(rollout_config(heldout_ids, out / "rollouts" / "heldout"))).main
    try:
        for it in range(start, config.iterations):
            metrics = await _iteration(it, config, env_tasks=train_ids, engine=engine, model=model, optimizer=optimizer,
                                       version=version, pad_id=pad_id, loss_config=loss_config, echo=echo,
                                       rollout_config=rollout_config, rollouts=rollouts, out=out, multi=multi,
                                       policies=policies, tree=tree, predictor=predictor)
            version = int(metrics["policy_version_after"])
            if heldout:
                metrics["heldout_obs_nll"] = heldout_obs_nll(model, heldout, pad_id=pad_id,
                                                             temperature=config.temperature, device=config.device)
            log.write(metrics)
            if predictor is not None:
                predictor.save(out / PREDICTOR_FILE)
            if (it + 1) % config.save_every == 0 or it == config.iterations - 1:
                ckpt.save_checkpoint(out, iteration=it, policy_version=version, model=model, optimizer=optimizer,
                                     tokenizer=engine.tokenizer, agents=others)
    finally:
        log.close()
    return TrainResult(out=out, metrics=read_metrics(log.path), policy_version=version, resumed_from=resumed_from)


async def _iteration(it: int, config: TrainConfig, *, env_tasks: Sequence[str], engine: Engine,
                     model: torch.nn.Module, optimizer: torch.optim.Optimizer, version: int, pad_id: int,
                     loss_config: LossConfig | None, echo: EchoConfig | None, rollout_config: Any,
                     rollouts: _Rollouts, out: Path, multi: MultiAgentConfig | None = None,
                     policies: Mapping[str, Policy] | None = None, tree: TreeRolloutConfig | None = None,
                     predictor: SuccessPredictor | None = None) -> dict[str, Any]:
    tasks = _task_schedule(env_tasks, config, it)
    t0 = time.time()
    rollout_dir = out / "rollouts" / f"iter-{it:05d}"
    tree_metrics: dict[str, Any] | None = None
    if tree is not None and predictor is not None:
        async def run_wave(samples_by_task: Mapping[str, int], branches: Sequence[Branch]) -> RolloutResult:
            cfg = rollout_config(tasks, rollout_dir, samples_by_task=dict(samples_by_task), branches=list(branches))
            return await rollouts.run(cfg)

        result, tree_metrics = await tree_rollouts(run_wave, tasks, len(tasks) * config.group_size, predictor, tree,
                                                   rollout_dir / "calls")
    else:
        result = await rollouts.run(rollout_config(tasks, rollout_dir))
    t_rollout = time.time() - t0
    trajs = result.main
    if multi is not None:
        groups, counts = select_multiagent_groups(
            result.trajectories, multi, drop_stop_reasons=config.drop_stop_reasons,
            skip_groups_without_signal=config.skip_groups_without_signal,
            rng=random.Random(config.seed * 15485863 + it))
    else:
        groups, counts = select_groups(trajs, config)
    rewards = [t.reward for t in trajs if t.stop_reason.value not in config.drop_stop_reasons]
    per_task: dict[str, list[float]] = {}
    for t in trajs:
        per_task.setdefault(t.task_id, []).append(t.reward)
    everyone = result.trajectories if multi is not None else trajs  # whose tokens were sampled to train
    sampled = sum(t.sampled_tokens for t in everyone)
    trained = sum(t.trained_tokens for t in everyone)
    metrics: dict[str, Any] = {
        "iteration": it, "policy_version": version, "episodes": len(trajs), "tasks": tasks,
        "mean_reward": sum(rewards) / len(rewards) if rewards else 0.0,
        "success_rate": sum(r >= 1.0 for r in rewards) / len(rewards) if rewards else 0.0,
        "success_by_task": {k: sum(r >= 1.0 for r in v) / len(v) for k, v in per_task.items()},
        **counts,
        "stop_reasons": dict(Counter(t.stop_reason.value for t in trajs)),
        "break_reasons": dict(Counter(s.break_reason.value for t in everyone for s in t.segments[1:])),
        "tokens_sampled": sampled, "tokens_trained": trained,
        "delivered_fraction": trained / sampled if sampled else 1.0,
        "episodes_resumed": result.skipped, "seconds_rollout": t_rollout,
        "episodes_per_second": len(trajs) / t_rollout if t_rollout > 0 else 0.0,
        "stale_tokens_dropped": 0, "policy_version_after": version,
    }
    if tree_metrics is not None:
        metrics["tree"] = tree_metrics
    if multi is not None:
        subs = [t for t in result.trajectories if agent_role(t.agent_id) != "main"]
        metrics["subagent_trajectories"] = len(subs)
        metrics["subagents_per_episode"] = len(subs) / len(trajs) if trajs else 0.0
        trained_rewards: dict[str, list[float]] = {}
        for g in groups:
            for t in g.trajectories:
                trained_rewards.setdefault(agent_role(t.agent_id), []).append(t.reward)
        metrics["trained_reward_by_role"] = {k: sum(v) / len(v) for k, v in trained_rewards.items()}
    t1 = time.time()
    update = await _update(groups, config, engine=engine, model=model, optimizer=optimizer, version=version,
                           pad_id=pad_id, loss_config=loss_config, echo=echo, step_base=it, metrics=metrics,
                           policies=policies, policy_role=multi.policy_role if multi is not None else None)
    if update is not None:
        metrics["update"] = update
        metrics["weight_sync_s"] = await rollouts.push(model, policies, version + 1, config.weight_sync_timeout_s)
        metrics["policy_version_after"] = version + 1
    metrics["seconds_update"] = time.time() - t1
    return metrics


async def _update(groups: list[TrajectoryGroup], config: TrainConfig, *, engine: Engine, model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer, version: int, pad_id: int, loss_config: LossConfig | None,
                  echo: EchoConfig | None, step_base: int, metrics: dict[str, Any],
                  policies: Mapping[str, Policy] | None = None,
                  policy_role: Callable[[str], str] | None = None) -> dict[str, float] | None:
    """The optimizer steps of one iteration; ``None`` (and no step) when nothing has signal.

    ``policies`` (role -> model and optimizer, with ``policy_role`` mapping an agent id to its
    role): each role's trajectories train that role's policy only; otherwise ``model`` trains on
    every trajectory. Advantages are computed once, over the whole batch."""
    if not groups:
        metrics["update_skipped_reason"] = "no group with a learning signal"
        return None
    batch = StepBatch.from_groups(groups, pad_id=pad_id)
    action = batch.action_mask
    if batch.policy_version is not None:
        stale = (batch.policy_version < version - config.max_staleness) & (action > 0)
        metrics["stale_tokens_dropped"] = int(stale.sum())
        action = action * (~stale).to(action.dtype)
    result = registries.estimators.get(config.estimator)(batch, config.estimator_config or None)
    adv_rows = result.rows
    adv = result.tokens if result.tokens is not None else batch.row_to_tokens(adv_rows)
    adv = adv * (action > 0).to(adv.dtype)
    metrics["advantage"] = {"mean": float(adv_rows.mean()), "std": float(adv_rows.std()) if adv_rows.numel() > 1 else 0.0,
                            "abs_mean": float(adv_rows.abs().mean()), "max": float(adv_rows.abs().max())}
    if int((action > 0).sum()) == 0:
        metrics["update_skipped_reason"] = "every action token is stale"
        return None
    if not bool((adv != 0).any()) and echo is None:
        metrics["update_skipped_reason"] = "every advantage is zero"
        return None
    seq_traj = batch.seq_traj if batch.seq_traj is not None else torch.zeros(batch.input_ids.shape[0], dtype=torch.long)
    rng = torch.Generator().manual_seed(config.seed * 104729 + step_base)
    # Which policy trains each trajectory: one shared policy, or its agent's role's.
    trained_by: dict[str, Policy] = dict(policies) if policies else {"": (model, optimizer)}
    if policies:
        role_of = policy_role or agent_role
        first_row = torch.cat([torch.ones(1, dtype=torch.bool), batch.traj_ids[1:] != batch.traj_ids[:-1]])
        role_of_traj = [role_of(batch.agent_ids[i]) for i in torch.nonzero(first_row).squeeze(-1).tolist()]
    else:
        role_of_traj = [""] * batch.num_trajectories
    traj_of_role = {role: torch.tensor([t for t, r in enumerate(role_of_traj) if r == role], dtype=torch.long)
                    for role in trained_by}
    steps: list[dict[str, float]] = []
    by_role: dict[str, list[dict[str, float]]] = {}
    for epoch in range(config.epochs):
        for role, (role_model, role_optimizer) in trained_by.items():
            mine = traj_of_role[role]
            if mine.numel() == 0:
                continue
            order = mine[torch.randperm(mine.numel(), generator=rng)]
            for chunk in order.chunk(config.mini_batches):
                seqs = torch.nonzero(torch.isin(seq_traj, chunk)).squeeze(-1)
                if seqs.numel() == 0:
                    continue
                view = _view(batch, seqs, action)
                step = train_step(role_model, role_optimizer, view, adv[seqs], loss=config.loss,
                                  loss_config=loss_config, echo=echo, micro_batch_size=config.micro_batch_size,
                                  max_grad_norm=config.max_grad_norm, temperature=config.temperature,
                                  step=step_base * config.epochs * config.mini_batches + len(steps))
                steps.append(step)
                by_role.setdefault(role, []).append(step)
                if epoch == 0 and len(steps) == 1:  # behaviour = current policy here: the ratio must be 1
                    metrics["first_step_ratio"] = {k: steps[0][f"ratio_{k}"] for k in ("mean", "min", "max")
                                                   if f"ratio_{k}" in steps[0]}
    if not steps:
        metrics["update_skipped_reason"] = "no sequence to train on"
        return None
    if policies:
        metrics["update_by_role"] = {role: _aggregate(s) for role, s in by_role.items()}
    return _aggregate(steps)


def _aggregate(steps: list[dict[str, float]]) -> dict[str, float]:
    """The mean over optimizer steps of each metric; token counts summed."""
    summed = ("action_tokens", "forward_tokens", "sequences", "micro_batches")
    keys = {k for s in steps for k in s}
    agg = {k: (sum(s.get(k, 0.0) for s in steps) if k in summed else sum(s.get(k, 0.0) for s in steps) / len(steps))
           for k in keys}
    agg["optimizer_steps"] = float(len(steps))
    return agg
