"""GiGPO: episode advantage over a task group's step rows + step advantage over anchor-state groups.

For row ``i`` of trajectory ``tau`` in task group ``u`` (``r_t`` = step reward, plus the terminal
reward on the last row; ``c`` = ``invalid_penalty``):

1. episode score ``s_i = sum_{t in tau} r_t - c * (1 - valid_i)``;
2. ``A^E_i`` = ``s_i`` normalised over **all step rows** of ``u`` (longer trajectories weigh more);
   ``mean_norm``: ``s - mean``; ``mean_std_norm``: ``(s - mean) / (std + eps)``, unbiased std;
   a single-row group uses mean 0, std 1;
3. step groups: rows of ``u`` with the identical anchor (also twice in one trajectory); the same
   anchor in another task group is another step group. Similarity mode: within ``u``, in row
   order, a row joins the first cluster whose *first member* ``rep`` has
   ``SequenceMatcher(None, anchor, rep).ratio() >= similarity_threshold``, else opens a cluster;
4. ``A^S_i`` = the same normalisation of ``R_i - c * (1 - valid_i)`` within the step group, where
   ``R_i = sum_{k >= i} gamma^(k-i) r_k``; a singleton step group gives 0;
5. ``A = A^E + omega * A^S``.

Differences from the verl-agent reference (all deliberate): statistics in float64 instead of
float32; a group whose values are all equal gets exactly 0 (the reference's float32 mean can leave
a ~1e-8 residue); the terminal reward is carried separately in the batch and added to the last
step's ``r_t`` (the reference's env already folds it into the last step reward). Step groups are
computed per task group before any padding or reordering, as the reference requires.

The vectorised version uses dense keys + scatter ops; in similarity mode it loops over the
*distinct* (task group, anchor) pairs — equal anchors always land in the same cluster, because
``ratio(a, a) == 1`` and clusters are only appended, so this equals the per-row greedy pass — and
keeps one ``SequenceMatcher`` per cluster (difflib caches the analysis of its second sequence)
with the exact upper bounds ``real_quick_ratio`` / ``quick_ratio`` checked before ``ratio``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from agentgym.errors import ConfigError

from ..batch import StepBatch
from ._common import (
    F64,
    NormMode,
    check_mode,
    dense,
    discounted_returns,
    full_rewards,
    full_rewards_reference,
    group_normalize,
    make_result,
    normalize_reference,
    resolve_config,
    returns_reference,
    rows_by_trajectory,
)
from .base import AdvantageResult

__all__ = [
    "GiGPOConfig",
    "anchor_step_groups",
    "anchor_step_groups_reference",
    "gigpo_advantages",
    "gigpo_advantages_reference",
    "gigpo_episode_advantages",
    "gigpo_episode_advantages_reference",
]


@dataclass(frozen=True)
class GiGPOConfig:
    gamma: float = 0.95
    """Discount of the step return ``R_t``."""
    omega: float = 1.0
    """Weight of the step advantage: ``A = A^E + omega * A^S``."""
    mode: NormMode = "mean_norm"
    """``mean_norm`` (reference default) or ``mean_std_norm`` (the ALFWorld recipes)."""
    invalid_penalty: float = 0.1
    """``c``: subtracted from an invalid row's episode score and, separately, from its return."""
    similarity: bool = False
    """Cluster anchors by ``difflib`` similarity instead of exact equality."""
    similarity_threshold: float = 0.95
    eps: float = 1e-6

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.similarity and not 0.0 < self.similarity_threshold <= 1.0:
            raise ConfigError(f"similarity_threshold must be in (0, 1], got {self.similarity_threshold}")


def _similar(a: str, rep: str, threshold: float) -> bool:
    return difflib.SequenceMatcher(None, a, rep).ratio() >= threshold


# -- step groups -----------------------------------------------------------------------------------
def anchor_step_groups(batch: StepBatch, similarity: bool = False, threshold: float = 0.95) -> tuple[Tensor, int]:
    """Dense step-group id per row (long[R]) and the number of step groups."""
    if not similarity:
        return dense(batch.group_ids, batch.anchor_index)
    pair, n_pairs = dense(batch.group_ids, batch.anchor_index)
    if n_pairs == 0:
        return pair, 0
    # first row of each distinct (group, anchor) pair, visited in row order
    first = torch.full((n_pairs,), batch.num_rows, dtype=torch.long)
    first.scatter_reduce_(0, pair, torch.arange(batch.num_rows), "amin")
    order = torch.argsort(first).tolist()
    first_rows = first.tolist()
    groups = batch.group_ids.tolist()
    cluster_of_pair = [0] * n_pairs
    # task group -> [(matcher holding the cluster's first member as seq2, cluster id)]. difflib caches
    # its analysis of seq2, and real_quick_ratio() >= quick_ratio() >= ratio() are upper bounds of
    # the same 2*M/T fraction, so checking them first skips work without changing any decision.
    reps: dict[int, list[tuple[difflib.SequenceMatcher[str], int]]] = {}
    n_clusters = 0
    for p in order:
        row = first_rows[p]
        anchor = batch.anchors[row]
        clusters = reps.setdefault(groups[row], [])
        for matcher, cid in clusters:
            matcher.set_seq1(anchor)
            if (matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold
                    and matcher.ratio() >= threshold):
                cluster_of_pair[p] = cid
                break
        else:
            clusters.append((difflib.SequenceMatcher(None, anchor, anchor), n_clusters))
            cluster_of_pair[p] = n_clusters
            n_clusters += 1
    return torch.tensor(cluster_of_pair, dtype=torch.long)[pair], n_clusters


def anchor_step_groups_reference(batch: StepBatch, similarity: bool = False, threshold: float = 0.95) -> list[int]:
    """Per-row loop: step-group id per row (ids in order of creation)."""
    out = [0] * batch.num_rows
    exact: dict[tuple[int, str], int] = {}
    clusters: dict[int, list[tuple[str, int]]] = {}
    n = 0
    for i, (g, anchor) in enumerate(zip(batch.group_ids.tolist(), batch.anchors, strict=True)):
        if not similarity:
            if (g, anchor) not in exact:
                exact[(g, anchor)] = n
                n += 1
            out[i] = exact[(g, anchor)]
            continue
        for rep, cid in clusters.setdefault(g, []):
            if _similar(anchor, rep, threshold):
                out[i] = cid
                break
        else:
            clusters[g].append((anchor, n))
            out[i] = n
            n += 1
    return out


# -- advantages ------------------------------------------------------------------------------------
def gigpo_episode_advantages(batch: StepBatch, mode: NormMode = "mean_norm", invalid_penalty: float = 0.1,
                             eps: float = 1e-6) -> Tensor:
    """float64[R]: ``A^E`` (step 1-2 of the module docstring). Also HGPO's optional base group."""
    check_mode(mode)
    full = full_rewards(batch)
    t = batch.num_trajectories
    episode = torch.zeros(t, dtype=F64).index_add_(0, batch.traj_ids, full)[batch.traj_ids]
    penalty = invalid_penalty * (~batch.valid).to(F64)
    # group_ids are dense by StepBatch's invariant
    return group_normalize(episode - penalty, batch.group_ids, batch.num_groups, scale=mode == "mean_std_norm", unbiased=True, eps=eps,
                           singleton="raw")


def gigpo_episode_advantages_reference(batch: StepBatch, mode: NormMode = "mean_norm",
                                       invalid_penalty: float = 0.1, eps: float = 1e-6) -> list[float]:
    """Per-row loop twin of :func:`gigpo_episode_advantages`."""
    check_mode(mode)
    full = full_rewards_reference(batch)
    valid = batch.valid.tolist()
    score = [0.0] * batch.num_rows
    for rows in rows_by_trajectory(batch).values():
        total = sum(full[i] for i in rows)
        for i in rows:
            score[i] = total - invalid_penalty * (0.0 if valid[i] else 1.0)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(batch.group_ids.tolist()):
        members.setdefault(g, []).append(i)
    a_e = [0.0] * batch.num_rows
    for rows in members.values():
        for i, a in zip(rows, normalize_reference([score[i] for i in rows], scale=mode == "mean_std_norm",
                                                  unbiased=True, eps=eps, singleton="raw"), strict=True):
            a_e[i] = a
    return a_e


def gigpo_advantages(batch: StepBatch, config: GiGPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """GiGPO advantages (vectorised). See the module docstring for the exact definition.

    >>> from agentgym.trainers.batch import StepBatch
    >>> b = StepBatch.from_arrays(group_ids=[0, 0, 0, 0], traj_ids=[0, 0, 1, 1], step_rewards=[0, 0, 0, 0],
    ...                           episode_rewards=[1, 1, 0, 0], anchors=["s", "a", "s", "b"])
    >>> [round(x, 4) for x in gigpo_advantages(b, {"invalid_penalty": 0.0}).rows.tolist()]
    [0.975, 0.5, -0.975, -0.5]
    """
    cfg = resolve_config(config, GiGPOConfig)
    scale = cfg.mode == "mean_std_norm"
    a_e = gigpo_episode_advantages(batch, cfg.mode, cfg.invalid_penalty, cfg.eps)
    penalty = cfg.invalid_penalty * (~batch.valid).to(F64)
    returns = discounted_returns(full_rewards(batch), batch.traj_ids, cfg.gamma) - penalty
    sgid, n_step_groups = anchor_step_groups(batch, cfg.similarity, cfg.similarity_threshold)
    a_s = group_normalize(returns, sgid, n_step_groups, scale=scale, unbiased=True, eps=cfg.eps, singleton="zero")
    sizes = torch.bincount(sgid, minlength=n_step_groups) if n_step_groups else torch.zeros(0)
    metrics = {
        "gigpo/step_groups": float(n_step_groups),
        "gigpo/step_group_size_mean": float(sizes.double().mean()) if n_step_groups else 0.0,
        "gigpo/singleton_row_frac": float((sizes[sgid] == 1).double().mean()) if batch.num_rows else 0.0,
    }
    return make_result(batch, a_e + cfg.omega * a_s, metrics)


def gigpo_advantages_reference(batch: StepBatch,
                               config: GiGPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain per-row loop version of :func:`gigpo_advantages` (for tests)."""
    cfg = resolve_config(config, GiGPOConfig)
    scale = cfg.mode == "mean_std_norm"
    r = batch.num_rows
    full = full_rewards_reference(batch)
    valid = batch.valid.tolist()
    ret = [0.0] * r
    for rows in rows_by_trajectory(batch).values():
        for i, big_r in zip(rows, returns_reference([full[i] for i in rows], cfg.gamma), strict=True):
            ret[i] = big_r - cfg.invalid_penalty * (0.0 if valid[i] else 1.0)
    a_e = gigpo_episode_advantages_reference(batch, cfg.mode, cfg.invalid_penalty, cfg.eps)
    a_s = [0.0] * r
    step_members: dict[int, list[int]] = {}
    for i, sg in enumerate(anchor_step_groups_reference(batch, cfg.similarity, cfg.similarity_threshold)):
        step_members.setdefault(sg, []).append(i)
    for rows in step_members.values():
        for i, a in zip(rows, normalize_reference([ret[i] for i in rows], scale=scale, unbiased=True,
                                                  eps=cfg.eps, singleton="zero"), strict=True):
            a_s[i] = a
    adv = [a_e[i] + cfg.omega * a_s[i] for i in range(r)]
    return make_result(batch, torch.tensor(adv, dtype=F64), {})
