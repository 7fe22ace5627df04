"""Collation: reconstructed trajectory groups become one :class:`~agentgym.trainers.batch.StepBatch`.

Rows: groups in order, trajectories in order, steps sorted by ``Step.index``. Each step's row gets
``Step.reward`` (terminal reward excluded: it is ``Trajectory.reward``, carried in
``episode_rewards``), ``Step.anchor``, ``Step.valid`` and its agent id (``Step.agent_id``, or the
trajectory's ``agent_id`` when the step keeps the default ``"main"``).

Tokens: one sequence per segment, right-padded with ``pad_id`` to the longest segment of the
whole batch, so that every estimator sees one ``[S, L]`` shape. (``train_step`` trims each
micro-batch to its own longest sequence before the forward pass.) Tokens from
``step.obs_span[0]`` to ``step.action_span[1]`` of ``segments[step.segment_index]`` get the step's
row in ``token_row``, except those whose ``Segment.turn_index`` is -1 (the initial prompt, context
inherited by a branch), which stay -1; ``old_logprobs`` is the segment's logprobs on action tokens.

Tree: ``TrajectoryGroup.parents`` (``traj id -> (parent traj id, turn)``) makes the branched
trajectory share its parent's nodes for turns ``< turn``; without it each trajectory is its own
chain below the group's root.

Sub-agents: each row of a sub-agent's trajectory gets, in ``parent_traj``, the batch index of the
main rollout its ``parent_trajectory_id`` names (:func:`~agentgym.trainers.advantages.mgrpo.subagent_links`;
-1 for main agents, and when that rollout is not in the batch).

>>> from agentgym.types import Segment, Step, StopReason, Trajectory, TrajectoryGroup
>>> seg = Segment(input_ids=(1, 2, 3, 4), action_mask=(0, 0, 1, 1), obs_mask=(0, 1, 0, 0),
...               logprobs=(0, 0, -0.5, -0.5), turn_index=(-1, 0, 0, 0), policy_version=(0, 0, 0, 0))
>>> step = Step(index=0, call_id="c0", segment_index=0, obs_span=(1, 2), action_span=(2, 4))
>>> traj = Trajectory(id="a", task_id="t", session_id="s", segments=(seg,), steps=(step,), reward=1.0,
...                   stop_reason=StopReason.COMPLETED)
>>> batch = collate_groups([TrajectoryGroup("t", (traj,))])
>>> batch.token_row.tolist(), batch.old_logprobs.tolist(), batch.full_step_rewards().tolist()
([[-1, 0, 0, 0]], [[0.0, 0.0, -0.5, -0.5]], [1.0])
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch

from agentgym.types import Segment, Step, Trajectory, TrajectoryGroup

from .advantages.mgrpo import subagent_links
from .batch import StepBatch, intern

__all__ = ["collate_groups"]


class _GroupTree:
    """Node ids of one task group's rollout tree, drawn from a batch-wide counter.

    ``node(traj_id, turn)`` is the node reached by that turn. A branched trajectory's turns before
    its branch point are its parent's (recursively, guarding against cycles in ``parents``).
    """

    def __init__(self, group: TrajectoryGroup, new_node: Iterator[int]) -> None:
        self.group = group
        self.new_node = new_node
        self.root = next(new_node)
        self.by_id = {tr.id: tr for tr in group.trajectories}
        self.node_of: dict[tuple[str, int], int] = {}  # (traj id, turn) -> node reached by that turn

    def node(self, traj_id: str, turn: int) -> int:
        seen: set[str] = set()
        key = (traj_id, turn)
        while key[0] in self.group.parents and key[0] not in seen:
            seen.add(key[0])
            parent_id, branch_turn = self.group.parents[key[0]]
            if key[1] < branch_turn and parent_id in self.by_id:
                key = (parent_id, key[1])
            else:
                break
        if key not in self.node_of:
            self.node_of[key] = next(self.new_node)
        return self.node_of[key]


def _token_rows(traj: Trajectory, steps: Sequence[Step], rows_of_step: Sequence[int]) -> list[list[int]]:
    """``token_row`` per segment of ``traj``: each step's row on its observation and action tokens.

    ``steps`` in time order; where spans overlap, the later step wins.
    """
    seg_rows: list[list[int]] = [[-1] * len(seg) for seg in traj.segments]
    for step, row in zip(steps, rows_of_step, strict=True):
        if not 0 <= step.segment_index < len(seg_rows):
            continue
        rows = seg_rows[step.segment_index]
        turn = traj.segments[step.segment_index].turn_index
        # an empty obs_span (e.g. the (0, 0) default) claims no observation tokens
        lo = step.obs_span[0] if step.obs_span[1] > step.obs_span[0] else step.action_span[0]
        lo = max(0, min(lo, step.action_span[0]))
        hi = min(len(rows), step.action_span[1])
        for i in range(lo, hi):
            # the initial prompt / inherited context (turn_index -1) belongs to no step
            if len(turn) != len(rows) or turn[i] != -1:
                rows[i] = row
    return seg_rows


def collate_groups(groups: Sequence[TrajectoryGroup], pad_id: int = 0) -> StepBatch:
    """Build a batch from reconstructed trajectory groups (see the module docstring for the layout).

    ``StepBatch.from_groups(groups, pad_id)`` is the same call.
    """
    gid: list[int] = []
    tid: list[int] = []
    sidx: list[int] = []
    anchors: list[str] = []
    srew: list[float] = []
    erew: list[float] = []
    valid: list[bool] = []
    agents: list[str] = []
    tnode: list[int] = []
    tparent: list[int] = []
    row_traj_ids: list[str] = []
    seqs: list[tuple[Segment, list[int], int]] = []  # (segment, token_row list, traj index)
    new_node = itertools.count()
    t_index = 0
    index_of: dict[str, int] = {}
    for g_index, group in enumerate(groups):
        tree = _GroupTree(group, new_node)
        for traj in group.trajectories:
            steps = sorted(traj.steps, key=lambda s: s.index)
            rows_of_step = list(range(len(gid), len(gid) + len(steps)))
            index_of.setdefault(traj.id, t_index)
            row_traj_ids.extend([traj.id] * len(steps))
            for step in steps:
                gid.append(g_index)
                tid.append(t_index)
                sidx.append(step.index)
                anchors.append(step.anchor)
                srew.append(float(step.reward))
                erew.append(float(traj.reward))
                valid.append(bool(step.valid))
                agents.append(step.agent_id if step.agent_id != "main" else traj.agent_id)
                tnode.append(tree.node(traj.id, step.index))
                tparent.append(tree.root if step.index == 0 else tree.node(traj.id, step.index - 1))
            for seg, rows in zip(traj.segments, _token_rows(traj, steps, rows_of_step), strict=True):
                seqs.append((seg, rows, t_index))
            t_index += 1
    links = subagent_links([t for g in groups for t in g.trajectories])
    parent = [index_of.get(links.get(tid, ""), -1) for tid in row_traj_ids]
    agent_index, agent_names = intern(agents)
    anchor_index, _ = intern(anchors)
    s = len(seqs)
    length = max((len(seg) for seg, _, _ in seqs), default=0)
    input_ids = torch.full((s, length), pad_id, dtype=torch.long)
    attention = torch.zeros((s, length), dtype=torch.long)
    action = torch.zeros((s, length))
    obs = torch.zeros((s, length))
    body = torch.zeros((s, length))
    logp = torch.zeros((s, length))
    token_row = torch.full((s, length), -1, dtype=torch.long)
    version = torch.zeros((s, length), dtype=torch.long)
    for i, (seg, rows, _) in enumerate(seqs):
        n = len(seg)
        input_ids[i, :n] = torch.tensor(seg.input_ids, dtype=torch.long)
        attention[i, :n] = 1
        action[i, :n] = torch.tensor(seg.action_mask, dtype=torch.float32)
        obs[i, :n] = torch.tensor(seg.obs_mask, dtype=torch.float32)
        body[i, :n] = torch.tensor(seg.obs_body_mask or seg.obs_mask, dtype=torch.float32)
        logp[i, :n] = torch.tensor(seg.logprobs, dtype=torch.float32) * action[i, :n]
        token_row[i, :n] = torch.tensor(rows, dtype=torch.long)
        if len(seg.policy_version) == n:
            version[i, :n] = torch.tensor(seg.policy_version, dtype=torch.long)
    return StepBatch(
        group_ids=torch.tensor(gid, dtype=torch.long), traj_ids=torch.tensor(tid, dtype=torch.long),
        step_index=torch.tensor(sidx, dtype=torch.long), anchors=anchors,
        step_rewards=torch.tensor(srew, dtype=torch.float32),
        episode_rewards=torch.tensor(erew, dtype=torch.float32),
        valid=torch.tensor(valid, dtype=torch.bool), agent_ids=agents, agent_index=agent_index,
        anchor_index=anchor_index, agent_names=agent_names,
        input_ids=input_ids, attention_mask=attention, action_mask=action, obs_mask=obs,
        old_logprobs=logp, token_row=token_row, obs_body_mask=None if torch.equal(body, obs) else body,
        policy_version=version,
        seq_traj=torch.tensor([t for _, _, t in seqs], dtype=torch.long),
        tree_node=torch.tensor(tnode, dtype=torch.long), tree_parent=torch.tensor(tparent, dtype=torch.long),
        parent_traj=torch.tensor(parent, dtype=torch.long),
    )
