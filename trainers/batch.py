"""`StepBatch`: the one typed batch every advantage estimator and loss reads.

Rows are *steps* (one LLM call of one trajectory). Tokens live in ``S`` padded sequences
(trajectory segments) of length ``L``; ``token_row`` ties every token to the row of the step it
belongs to, so a per-row advantage becomes a per-token one with :meth:`StepBatch.row_to_tokens`.
Build one from plain arrays with :meth:`StepBatch.from_arrays`, or from reconstructed trajectory
groups with :meth:`StepBatch.from_groups` (:mod:`agentgym.trainers.collate`).

Invariants (checked by the constructor):

* rows of one trajectory are contiguous and in time order (``step_index`` increasing);
* ``group_ids`` and ``traj_ids`` are dense (``0 .. G-1`` / ``0 .. T-1``), every trajectory sits
  in exactly one group, and ``episode_rewards`` is constant over a trajectory's rows;
* ``step_rewards`` do **not** include the terminal reward: the reward credited at step ``t``
  (``r_t`` in ALGORITHMS.md) is ``step_rewards[t] + [t is the trajectory's last row] *
  episode_rewards[t]`` — see :meth:`StepBatch.full_step_rewards`;
* tree structure (optional) is two per-row node ids: ``tree_node`` is the node the step
  *reaches* (the turn-level prefix through this step), ``tree_parent`` the node it starts from
  (the root of the task's tree for the first step). Node ids are unique across the batch; a
  node that is nobody's ``tree_node`` is a root. A trajectory's leaf is the ``tree_node`` of its
  last row. Branched trajectories share the node ids of their common prefix.

>>> b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 0, 1], step_rewards=[0, 0, 0],
...                           episode_rewards=[1, 1, 0])
>>> b.num_rows, b.num_trajectories, b.num_groups
(3, 2, 1)
>>> b.full_step_rewards().tolist()
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from agentgym.errors import ConfigError

if TYPE_CHECKING:
    from agentgym.types import TrajectoryGroup

__all__ = ["StepBatch", "intern"]


def intern(keys: Sequence[str]) -> tuple[Tensor, list[str]]:
    """Map strings to dense ids in first-seen order: ``(ids long[R], vocabulary)``."""
    table: dict[str, int] = {}
    ids = [table.setdefault(k, len(table)) for k in keys]
    return torch.tensor(ids, dtype=torch.long), list(table)


def _long(x: Any) -> Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.int64)) if not isinstance(x, Tensor) else x.long()


def _float(x: Any) -> Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, Tensor) else x.float()


def _bool(x: Any) -> Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.bool_)) if not isinstance(x, Tensor) else x.bool()


def _empty_tokens(dtype: torch.dtype) -> Tensor:
    return torch.zeros((0, 0), dtype=dtype)


@dataclass(frozen=True, eq=False)
class StepBatch:
    """A batch of steps and their tokens. Build it with :meth:`from_groups` or :meth:`from_arrays`.

    Per-row tensors have length ``R``; per-token tensors have shape ``[S, L]`` (``[0, 0]`` when the
    batch carries no tokens, e.g. in pure advantage tests).
    """

    # -- per row -------------------------------------------------------------------------------
    group_ids: Tensor
    """long[R]: task-group index (dense, ``0 .. G-1``)."""
    traj_ids: Tensor
    """long[R]: trajectory index, unique across the batch (dense, ``0 .. T-1``)."""
    step_index: Tensor
    """long[R]: turn index of the step within its trajectory (strictly increasing per trajectory)."""
    anchors: list[str]
    """Anchor-state key per row (see :mod:`agentgym.trainers.anchors`)."""
    step_rewards: Tensor
    """float[R]: intermediate reward of the step, *excluding* the terminal reward."""
    episode_rewards: Tensor
    """float[R]: the trajectory's terminal reward, repeated on each of its rows."""
    valid: Tensor
    """bool[R]: the step's action parsed into the expected format."""
    agent_ids: list[str]
    """Agent id per row (``"main"``, ``"sub:0"`` ...)."""
    agent_index: Tensor
    """long[R]: ``agent_ids`` interned in first-seen order (``agent_names[agent_index[i]]``)."""
    anchor_index: Tensor
    """long[R]: ``anchors`` interned in first-seen order; equal strings <=> equal ids."""
    agent_names: list[str]
    """Vocabulary of ``agent_index``."""
    # -- per token -----------------------------------------------------------------------------
    input_ids: Tensor = field(default_factory=lambda: _empty_tokens(torch.long))
    """long[S, L]."""
    attention_mask: Tensor = field(default_factory=lambda: _empty_tokens(torch.long))
    """long[S, L]: 1 on real tokens, 0 on padding."""
    action_mask: Tensor = field(default_factory=lambda: _empty_tokens(torch.float32))
    """float[S, L]: 1 where the policy sampled the token and it is trained."""
    obs_mask: Tensor = field(default_factory=lambda: _empty_tokens(torch.float32))
    """float[S, L]: 1 on environment-output tokens (ECHO targets)."""
    old_logprobs: Tensor = field(default_factory=lambda: _empty_tokens(torch.float32))
    """float[S, L]: the engine's logprob on action tokens, 0 elsewhere."""
    token_row: Tensor = field(default_factory=lambda: _empty_tokens(torch.long))
    """long[S, L]: row of the step the token belongs to; -1 for padding and the initial prompt."""
    obs_body_mask: Tensor | None = None
    """float[S, L]: whole observation body incl. harness warnings (ECHO's ``|O|``); ``None`` means
    "same as ``obs_mask``" — read it through :attr:`observation_body_mask`."""
    policy_version: Tensor | None = None
    """long[S, L]: the policy version that sampled each token (``None``: not tracked). The
    training loop refuses action tokens older than its staleness bound."""
    seq_traj: Tensor | None = None
    """long[S]: trajectory index of each sequence (``None`` when there are no tokens)."""
    parent_traj: Tensor | None = None
    """long[R]: for a sub-agent's row, the index (in ``traj_ids``) of its main rollout's trajectory
    (``Trajectory.parent_trajectory_id``); -1 for a main agent's rows and for sub-agents whose
    main rollout is not in the batch. ``None``: no links known (M-GRPO reads it)."""
    # -- tree (optional) -----------------------------------------------------------------------
    tree_node: Tensor | None = None
    """long[R]: node reached by the step (prefix through this turn); see module docstring."""
    tree_parent: Tensor | None = None
    """long[R]: node the step starts from (the task's root for a first step)."""

    def __post_init__(self) -> None:
        r = self.group_ids.shape[0]
        for name in ("traj_ids", "step_index", "step_rewards", "episode_rewards", "valid",
                     "agent_index", "anchor_index"):
            if getattr(self, name).shape != (r,):
                raise ConfigError(f"StepBatch.{name} has shape {tuple(getattr(self, name).shape)}, expected ({r},)")
        if len(self.anchors) != r or len(self.agent_ids) != r:
            raise ConfigError(f"StepBatch.anchors/agent_ids need {r} entries, got {len(self.anchors)}/{len(self.agent_ids)}")
        if (self.tree_node is None) != (self.tree_parent is None):
            raise ConfigError("StepBatch.tree_node and tree_parent must be given together")
        if self.tree_node is not None and (self.tree_node.shape != (r,) or self.tree_parent is None
                                           or self.tree_parent.shape != (r,)):
            raise ConfigError(f"StepBatch.tree_node/tree_parent must have shape ({r},)")
        if self.parent_traj is not None:
            if self.parent_traj.shape != (r,):
                raise ConfigError(f"StepBatch.parent_traj must have shape ({r},)")
            if r and (int(self.parent_traj.max()) >= int(self.traj_ids.max()) + 1 or int(self.parent_traj.min()) < -1):
                raise ConfigError("StepBatch.parent_traj holds trajectory indices (0..T-1) or -1")
        if r:
            same = self.traj_ids[1:] == self.traj_ids[:-1]
            starts = torch.cat([torch.ones(1, dtype=torch.bool), ~same])
            if int(starts.sum()) != int(self.traj_ids.max()) + 1 or int(self.traj_ids.min()) != 0:
                raise ConfigError("StepBatch.traj_ids must be dense 0..T-1 with each trajectory's rows contiguous")
            if bool((same & (self.step_index[1:] <= self.step_index[:-1])).any()):
                raise ConfigError("StepBatch rows of a trajectory must be in time order (step_index increasing)")
            if bool((same & (self.group_ids[1:] != self.group_ids[:-1])).any()):
                raise ConfigError("StepBatch: a trajectory's rows must all have the same group_ids")
            if bool((same & (self.episode_rewards[1:] != self.episode_rewards[:-1])).any()):
                raise ConfigError("StepBatch.episode_rewards must be constant over a trajectory's rows")
            if int(self.group_ids.min()) < 0:
                raise ConfigError("StepBatch.group_ids must be non-negative")
        if self.token_row.shape != self.input_ids.shape or self.action_mask.shape != self.input_ids.shape:
            raise ConfigError("StepBatch token tensors (input_ids, action_mask, token_row ...) must share one [S, L] shape")

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return int(self.group_ids.shape[0])

    @property
    def num_trajectories(self) -> int:
        return int(self.traj_ids.max()) + 1 if self.num_rows else 0

    @property
    def num_groups(self) -> int:
        return int(self.group_ids.max()) + 1 if self.num_rows else 0

    @property
    def has_tokens(self) -> bool:
        return self.input_ids.numel() > 0

    @property
    def observation_body_mask(self) -> Tensor:
        """``obs_body_mask`` when given, else ``obs_mask``."""
        return self.obs_body_mask if self.obs_body_mask is not None else self.obs_mask

    # -- derived per-row quantities -------------------------------------------------------------
    def last_row_mask(self) -> Tensor:
        """bool[R]: the row is its trajectory's last step."""
        r = self.num_rows
        if r == 0:
            return torch.zeros(0, dtype=torch.bool)
        return torch.cat([self.traj_ids[1:] != self.traj_ids[:-1], torch.ones(1, dtype=torch.bool)])

    def action_row_mask(self) -> Tensor:
        """bool[R]: the row owns at least one action token (``token_row`` where ``action_mask > 0``).

        All True when the batch carries no tokens: nothing then says a step went untrained.
        """
        r = self.num_rows
        if not self.has_tokens:
            return torch.ones(r, dtype=torch.bool)
        owned = self.token_row[(self.action_mask > 0) & (self.token_row >= 0)]
        out = torch.zeros(r, dtype=torch.bool)
        out[owned] = True
        return out

    def full_step_rewards(self) -> Tensor:
        """float[R]: ``r_t`` = step reward plus the terminal reward on the trajectory's last row."""
        return self.step_rewards + self.episode_rewards * self.last_row_mask().to(self.episode_rewards.dtype)

    def row_to_tokens(self, adv_rows: Tensor) -> Tensor:
        """Spread a per-row tensor over tokens: ``adv[token_row]`` on action tokens, 0 elsewhere.

        Returns float[S, L] (``[0, 0]`` when the batch has no tokens).
        """
        if adv_rows.shape != (self.num_rows,):
            raise ConfigError(f"row_to_tokens expects shape ({self.num_rows},), got {tuple(adv_rows.shape)}")
        if not self.has_tokens:
            return torch.zeros(self.input_ids.shape, dtype=adv_rows.dtype)
        idx = self.token_row.clamp(min=0)
        out = adv_rows[idx] if self.num_rows else torch.zeros(idx.shape, dtype=adv_rows.dtype)
        out = torch.where(self.token_row >= 0, out, torch.zeros((), dtype=out.dtype))
        return out * self.action_mask.to(out.dtype)

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        *,
        group_ids: Any,
        traj_ids: Any,
        step_rewards: Any,
        episode_rewards: Any = None,
        step_index: Any = None,
        anchors: Sequence[str] | None = None,
        valid: Any = None,
        agent_ids: Sequence[str] | None = None,
        tree_node: Any = None,
        tree_parent: Any = None,
        input_ids: Any = None,
        attention_mask: Any = None,
        action_mask: Any = None,
        obs_mask: Any = None,
        old_logprobs: Any = None,
        token_row: Any = None,
        obs_body_mask: Any = None,
        seq_traj: Any = None,
        policy_version: Any = None,
        parent_traj: Any = None,
    ) -> StepBatch:
        """Build a batch from plain lists / numpy arrays / tensors (tests, users' own pipelines).

        ``group_ids`` and ``traj_ids`` may be any integers; they are made dense in first-seen
        order. Rows of a trajectory must be contiguous and in time order. Defaults:
        ``episode_rewards`` 0 (all reward in ``step_rewards``), ``step_index`` 0, 1, 2 ... per
        trajectory, ``anchors`` all distinct (``"<row i>"``), ``valid`` True, ``agent_ids`` "main",
        no tokens. Token tensors, when given, must all share one ``[S, L]`` shape. ``parent_traj``
        (per row, -1 for none) names trajectories by their index in the dense ``traj_ids``.
        """
        g_raw = _long(group_ids)
        t_raw = _long(traj_ids)
        r = int(g_raw.shape[0])
        if t_raw.shape != (r,):
            raise ConfigError(f"traj_ids has {tuple(t_raw.shape)} entries, group_ids has {r}")
        # dense trajectory ids in order of appearance (rows are contiguous per trajectory)
        starts = torch.cat([torch.ones(min(r, 1), dtype=torch.bool), t_raw[1:] != t_raw[:-1]])
        t = torch.cumsum(starts.long(), 0) - 1
        if r and int(torch.unique(t_raw).numel()) != int(starts.sum()):
            raise ConfigError("from_arrays: the rows of each trajectory must be contiguous")
        g = _first_seen_dense(g_raw)
        if step_index is None:
            first = torch.zeros(max(int(t.max()) + 1 if r else 0, 0), dtype=torch.long)
            if r:
                first.scatter_reduce_(0, t, torch.arange(r), reduce="amin", include_self=False)
            si = torch.arange(r) - first[t] if r else torch.zeros(0, dtype=torch.long)
        else:
            si = _long(step_index)
        sr = _float(step_rewards)
        er = torch.zeros(r) if episode_rewards is None else _float(episode_rewards)
        anc = [f"<row {i}>" for i in range(r)] if anchors is None else [str(a) for a in anchors]
        v = torch.ones(r, dtype=torch.bool) if valid is None else _bool(valid)
        ag = ["main"] * r if agent_ids is None else [str(a) for a in agent_ids]
        agent_index, agent_names = intern(ag)
        anchor_index, _ = intern(anc)
        tok: dict[str, Any] = {}
        if input_ids is not None:
            ids = _long(input_ids)
            tok = {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids) if attention_mask is None else _long(attention_mask),
                "action_mask": torch.zeros(ids.shape) if action_mask is None else _float(action_mask),
                "obs_mask": torch.zeros(ids.shape) if obs_mask is None else _float(obs_mask),
                "old_logprobs": torch.zeros(ids.shape) if old_logprobs is None else _float(old_logprobs),
                "token_row": torch.full(ids.shape, -1, dtype=torch.long) if token_row is None else _long(token_row),
                "obs_body_mask": None if obs_body_mask is None else _float(obs_body_mask),
                "policy_version": None if policy_version is None else _long(policy_version),
                "seq_traj": None if seq_traj is None else _long(seq_traj),
            }
        return cls(
            group_ids=g, traj_ids=t, step_index=si, anchors=anc, step_rewards=sr, episode_rewards=er,
            valid=v, agent_ids=ag, agent_index=agent_index, anchor_index=anchor_index,
            agent_names=agent_names,
            tree_node=None if tree_node is None else _long(tree_node),
            tree_parent=None if tree_parent is None else _long(tree_parent),
            parent_traj=None if parent_traj is None else _long(parent_traj),
            **tok,
        )

    @classmethod
    def from_groups(cls, groups: Sequence[TrajectoryGroup], pad_id: int = 0) -> StepBatch:
        """Build a batch from reconstructed trajectory groups: :func:`agentgym.trainers.collate.collate_groups`.

        Rows in group, trajectory, step order; one right-padded sequence per segment (``pad_id``),
        all padded to the batch's longest; tree nodes from ``TrajectoryGroup.parents``; sub-agent
        links from ``Trajectory.parent_trajectory_id`` (``parent_traj``). See
        :mod:`agentgym.trainers.collate` for the exact layout.
        """
        from .collate import collate_groups  # collate builds StepBatch: import at call time

        return collate_groups(groups, pad_id=pad_id)


def _first_seen_dense(ids: Tensor) -> Tensor:
    """Relabel non-negative ids densely in order of first appearance."""
    if ids.numel() == 0:
        return ids
    uniq, inv = torch.unique(ids, return_inverse=True)
    first = torch.full((uniq.shape[0],), ids.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inv, torch.arange(ids.shape[0]), reduce="amin", include_self=True)
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.shape[0])
    return rank[inv]
