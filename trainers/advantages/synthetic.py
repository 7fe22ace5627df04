"""Seeded random step batches for tests and benchmarks (no tokens).

>>> b = random_step_batch(seed=0, groups=3, trajectories_per_group=4, mean_steps=5)
>>> b.num_groups, b.num_trajectories
(3, 12)
"""

from __future__ import annotations

import numpy as np

from ..batch import StepBatch

__all__ = ["random_step_batch"]


def random_step_batch(
    seed: int,
    groups: int = 4,
    trajectories_per_group: int = 8,
    mean_steps: float = 6.0,
    anchors_per_group: int = 6,
    *,
    step_reward_prob: float = 0.2,
    invalid_prob: float = 0.1,
    continuous_rewards: bool = False,
    agents: tuple[str, ...] = ("main",),
    tree: bool = False,
    fuzzy_anchors: bool = False,
) -> StepBatch:
    """A random batch shaped like real rollouts.

    Anchors are drawn from ``anchors_per_group`` strings shared by every group (so equal anchors in
    different task groups occur) and repeat within trajectories. Rewards are small discrete values
    (or continuous ones) so all-equal groups, ties and singleton groups all show up. With ``tree``
    each group's trajectories branch from earlier ones at random turns (shared node ids). With
    ``fuzzy_anchors`` anchors get random one-character edits (for similarity clustering).
    ``agents`` are assigned per trajectory.
    """
    rng = np.random.default_rng(seed)
    gid: list[int] = []
    tid: list[int] = []
    anchors: list[str] = []
    step_r: list[float] = []
    ep_r: list[float] = []
    valid: list[bool] = []
    agent_ids: list[str] = []
    node: list[int] = []
    parent: list[int] = []
    next_node = 0
    t = 0
    for g in range(groups):
        root = next_node
        next_node += 1
        paths: list[list[int]] = []  # node path per trajectory of this group
        for _ in range(trajectories_per_group):
            n = int(rng.integers(1, max(2, int(2 * mean_steps))))
            agent = agents[int(rng.integers(len(agents)))]
            terminal = float(rng.normal()) if continuous_rewards else float(rng.choice([0.0, 0.0, 1.0, 0.5]))
            path: list[int] = []
            if tree and paths and rng.random() < 0.7:
                base = paths[int(rng.integers(len(paths)))]
                path = base[: int(rng.integers(0, len(base) + 1))]
            for k in range(n):
                a = int(rng.integers(anchors_per_group))
                body = "abcdefghijklmnopqrstuvwxyz"
                text = f"state {a}: " + body[a % 26:] + body[: a % 26]
                if fuzzy_anchors and rng.random() < 0.5:
                    pos = int(rng.integers(len(text)))
                    text = text[:pos] + "#" + text[pos + 1:]
                gid.append(g)
                tid.append(t)
                anchors.append(text)
                if continuous_rewards:
                    step_r.append(float(rng.normal()) if rng.random() < step_reward_prob else 0.0)
                else:
                    step_r.append(float(rng.choice([0.25, -0.5])) if rng.random() < step_reward_prob else 0.0)
                ep_r.append(terminal)
                valid.append(bool(rng.random() >= invalid_prob))
                agent_ids.append(agent)
                parent.append(path[k - 1] if k >= 1 and k - 1 < len(path) else root)
                if k >= len(path):
                    path.append(next_node)
                    next_node += 1
                node.append(path[k])
            paths.append(path[:n])
            t += 1
    return StepBatch.from_arrays(
        group_ids=gid, traj_ids=tid, step_rewards=step_r, episode_rewards=ep_r, anchors=anchors, valid=valid,
        agent_ids=agent_ids, tree_node=node if tree else None, tree_parent=parent if tree else None,
    )
