"""Tree rollouts' planning: roots by V_root, one candidate per tree node, branches by V_pref with
journaled calls, unplaced budget to fresh episodes, the online success predictor, and a whole
iteration's waves against a stand-in runner (the real runner is in tests/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentgym.errors import ConfigError
from agentgym.proxy.calllog import CallLog
from agentgym.rollout.branch import Branch
from agentgym.rollout.runner import RolloutResult
from agentgym.trainers.tree_rollout import (
    SuccessPredictor,
    TaskTree,
    TreeRolloutConfig,
    plan_branches,
    plan_roots,
    prefix_candidates,
    tree_rollouts,
)
from agentgym.types import Call, Step, StopReason, Trajectory


def traj(tid: str, turns: int, reward: float, task: str = "t", parent: str | None = None, shared: int = 0,
         stop: StopReason = StopReason.COMPLETED, sample: int = 0) -> Trajectory:
    steps = tuple(Step(index=i, call_id=f"{tid}-{i:04d}", segment_index=0, action_span=(0, 0)) for i in range(turns))
    meta: dict[str, Any] = {}
    if parent is not None:
        meta["branch"] = {"parent": parent, "turn": shared, "shared_turns": shared, "replayed": shared,
                          "divergence": None, "divergence_call": None}
    from agentgym.types import Segment

    seg = Segment(input_ids=(1,), action_mask=(1,), obs_mask=(0,), logprobs=(0.0,), turn_index=(0,), policy_version=(0,))
    return Trajectory(id=tid, task_id=task, session_id=tid, segments=(seg,), steps=steps, reward=reward,
                      stop_reason=stop, metadata=meta, sample_index=sample)


def journal(root: Path, trajectories: Sequence[Trajectory]) -> Path:
    log = CallLog(root)
    for t in trajectories:
        for s in t.steps:
            log.append(Call(call_id=s.call_id, session_id=t.session_id, index=s.index, agent_id="main",
                            parent_call_id=None, break_reason=None, request={}, prompt_ids=(s.index,),
                            completion_ids=(7, s.index), completion_logprobs=(-0.1, -0.2)))
    log.stop()
    return root / "calls"


def test_a_branch_shares_its_parents_nodes_for_its_shared_turns() -> None:
    a, b = traj("a", 3, 1.0), traj("b", 4, 0.0, parent="a", shared=2)
    tree = TaskTree([a, b])
    assert [tree.node("a", i) for i in range(2)] == [tree.node("b", i) for i in range(2)]
    assert tree.node("a", 2) != tree.node("b", 2)
    # backed-up values: the shared turns see both outcomes, each leaf its own
    assert tree.root_value == 0.5 and tree.values[tree.node("a", 1)] == 0.5
    assert tree.values[tree.node("b", 3)] == 0.0 and tree.leaves[0] == 2


def test_prefix_candidates_are_one_per_node_and_owned_by_the_first_episode() -> None:
    cfg = TreeRolloutConfig()
    a, b = traj("a", 3, 1.0), traj("b", 4, 0.0, parent="a", shared=2)
    short, broken = traj("c", 1, 1.0), traj("d", 3, 0.0, stop=StopReason.RUNTIME_ERROR)
    cands = prefix_candidates([a, b, short, broken], SuccessPredictor(cfg))
    # a: turns 1, 2; b: turns 1 and 2 are a's nodes (not again), turn 3 is its own; c has one turn
    assert sorted((c.trajectory.id, c.turn) for c in cands) == [("a", 1), ("a", 2), ("b", 3)]
    by = {(c.trajectory.id, c.turn): c for c in cands}
    assert by[("a", 1)].outcome == 0.5 and by[("b", 3)].outcome == 0.0
    assert by[("b", 3)].value == pytest.approx((0.0 + 0.5) / 2)  # one failure, shrunk toward the prior


def test_roots_follow_v_root_with_the_predicted_rates() -> None:
    cfg = TreeRolloutConfig(root_fraction=0.75, min_roots_per_task=1)
    p = SuccessPredictor(cfg)
    p.counts = {"easy": (20.0, 20.0), "hard": (0.0, 20.0)}
    roots = plan_roots(["easy", "mid", "hard"], 16, p, cfg)
    assert sum(roots.values()) == 12 and roots["mid"] > roots["easy"] and roots["mid"] > roots["hard"]
    # too small a budget for the floor: every task still gets what there is
    assert sum(plan_roots(["x", "y", "z"], 2, SuccessPredictor(TreeRolloutConfig()), TreeRolloutConfig()).values()) == 2


def test_branches_go_to_the_largest_v_pref_and_replay_the_journaled_calls(tmp_path: Path) -> None:
    cfg = TreeRolloutConfig(max_per_prefix=1)
    p = SuccessPredictor(cfg)
    p.counts = {"hard": (0.0, 8.0), "even": (4.0, 8.0)}
    trajs = [traj("h0", 3, 0.0, task="hard"), traj("e0", 3, 1.0, task="even"), traj("e1", 2, 0.0, task="even")]
    calls = journal(tmp_path, trajs)
    branches, left = plan_branches(trajs, 2, p, cfg, calls)
    assert left == 0 and all(b.task_id == "even" for b in branches)  # a hard task's failure rarely turns
    for b in branches:
        assert len(b.calls) == b.turn and [c.call_id for c in b.calls] == [f"{b.parent_id}-{i:04d}" for i in range(b.turn)]
    # more budget than prefixes x cap: the rest comes back unplaced
    branches, left = plan_branches(trajs, 10, p, cfg, calls)
    assert len(branches) == 5 and left == 5


def test_the_predictor_learns_backed_up_values_with_decay() -> None:
    p = SuccessPredictor(TreeRolloutConfig(predictor_decay=0.5, prior_success=0.5))
    assert p.predict("t") == 0.5
    p.update("t", 0.0, 4)
    assert p.predict("t") == pytest.approx(0.5 / 5)
    p.update("t", 1.0, 4)   # the old counts weigh half
    assert p.predict("t") == pytest.approx((4 + 0.5) / (2 + 4 + 1))


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="root_fraction"):
        TreeRolloutConfig(root_fraction=0.0)
    with pytest.raises(ConfigError, match="bad \\[tree\\] table"):
        TreeRolloutConfig.from_mapping({"wave": 2})


def test_an_iteration_runs_roots_then_waves_within_the_budget(tmp_path: Path) -> None:
    """Two waves against a stand-in runner that 'runs' each episode as a 3-turn trajectory."""
    calls_dir = tmp_path / "calls"
    seen: list[tuple[dict[str, int], list[Branch]]] = []
    made: dict[tuple[str, int], Trajectory] = {}

    async def run(samples: Mapping[str, int], branches: Sequence[Branch]) -> RolloutResult:
        seen.append((dict(samples), list(branches)))
        specs = [(t, i, None) for t, n in samples.items() for i in range(n)]
        nxt = dict(samples)
        for b in branches:
            specs.append((b.task_id, nxt[b.task_id], b))
            nxt[b.task_id] += 1
        for task, i, b in specs:
            if (task, i) not in made:
                tid = f"{task}-{i}"
                made[(task, i)] = traj(tid, 3, float(i % 2), task=task, parent=b.parent_id if b and b.turn else None,
                                       shared=b.turn if b else 0, sample=i)
                journal(tmp_path, [made[(task, i)]])
        return RolloutResult(trajectories=list(made.values()), out_dir=tmp_path, journal=tmp_path, parquet=tmp_path,
                             backend="none", skipped=0, seconds=0.0)

    cfg = TreeRolloutConfig(waves=2, root_fraction=0.5)
    p = SuccessPredictor(cfg)
    result, metrics = asyncio.run(tree_rollouts(run, ["a", "b"], 12, p, cfg, calls_dir))
    assert len(result.main) == 12 and len(seen) == 3
    assert seen[0] == ({"a": 3, "b": 3}, []) and len(seen[1][1]) == 3 and len(seen[2][1]) == 6
    assert seen[2][1][:3] == seen[1][1]  # a later wave keeps the earlier branches (same sample numbers)
    assert metrics["roots"] == 6 and metrics["branches"] == 6 and metrics["divergence_rate"] == 0.0
    assert metrics["predicted_success"] == {"a": 0.5, "b": 0.5} and set(metrics["value_targets"]) == {"a", "b"}
    assert set(p.counts) == {"a", "b"}  # trained online on the backed-up root values


def test_a_resumed_iteration_plans_the_same_episodes(tmp_path: Path) -> None:
    """An interrupted iteration's journal already holds some branches; resuming it must plan the
    same roots and branches (same sample numbers), not branch from episodes of later waves."""
    made: dict[tuple[str, int], Trajectory] = {}
    plans: list[list[tuple[int, list[tuple[str, str, int]]]]] = [[], []]

    def runner(k: int, stop_after: int | None) -> Any:
        async def run(samples: Mapping[str, int], branches: Sequence[Branch]) -> RolloutResult:
            plans[k].append((sum(samples.values()), [(b.task_id, b.parent_id, b.turn) for b in branches]))
            nxt = dict(samples)
            specs = [(t, i, None) for t, n in samples.items() for i in range(n)]
            for b in branches:
                specs.append((b.task_id, nxt[b.task_id], b))
                nxt[b.task_id] += 1
            for task, i, b in specs[:stop_after]:
                if (task, i) not in made:
                    made[(task, i)] = traj(f"{task}-{i}", 2 + i % 3, float(i % 2), task=task,
                                           parent=b.parent_id if b and b.turn else None, shared=b.turn if b else 0,
                                           sample=i)
                    journal(tmp_path, [made[(task, i)]])
            return RolloutResult(trajectories=list(made.values()), out_dir=tmp_path, journal=tmp_path,
                                 parquet=tmp_path, backend="none", skipped=0, seconds=0.0)
        return run

    cfg = TreeRolloutConfig(waves=2)
    first, _ = asyncio.run(tree_rollouts(runner(0, None), ["a"], 10, SuccessPredictor(cfg), cfg, tmp_path / "calls"))
    # the same journal again (every episode already there), as a resumed iteration sees it
    again, _ = asyncio.run(tree_rollouts(runner(1, None), ["a"], 10, SuccessPredictor(cfg), cfg, tmp_path / "calls"))
    assert plans[0] == plans[1] and len(plans[0]) == 3
    assert sorted(t.id for t in again.main) == sorted(t.id for t in first.main) and len(first.main) == 10
