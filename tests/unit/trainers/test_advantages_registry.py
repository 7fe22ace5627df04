from __future__ import annotations

import pytest
import torch

from agentgym import registries
from agentgym.trainers.advantages.base import AdvantageResult
from agentgym.trainers.batch import StepBatch

torch.set_num_threads(1)

BUILTINS = ["drgrpo", "gigpo", "grpo", "hgpo", "mgrpo", "tree"]


def _batch() -> StepBatch:
    # 2 tasks x 2 trajectories x 2 steps; one sequence per trajectory: [prompt, obs, act, act, obs, act, pad]
    rows = [0, 1, 2, 3, 4, 5, 6, 7]
    token_row = [[-1, 2 * t, 2 * t, 2 * t, 2 * t + 1, 2 * t + 1, -1] for t in range(4)]
    action = [[0, 0, 1, 1, 0, 1, 0]] * 4
    return StepBatch.from_arrays(
        group_ids=[0, 0, 0, 0, 1, 1, 1, 1], traj_ids=[0, 0, 1, 1, 2, 2, 3, 3], step_rewards=[0.0] * len(rows),
        episode_rewards=[1, 1, 0, 0, 1, 1, 1, 1], anchors=["a", "b", "a", "c", "a", "b", "a", "b"],
        input_ids=[[1] * 7] * 4, action_mask=action, token_row=token_row,
        attention_mask=[[1] * 6 + [0]] * 4,
    )


def test_builtins_are_registered() -> None:
    assert set(BUILTINS) <= set(registries.estimators.ids())


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_has_the_one_signature(name: str) -> None:
    batch = _batch()
    estimator = registries.estimators.get(name)
    for config in (None, {}):
        out = estimator(batch, config)
        assert isinstance(out, AdvantageResult)
        assert out.rows.shape == (8,) and out.rows.dtype == torch.float32
        assert out.tokens is not None and out.tokens.shape == batch.input_ids.shape
        assert torch.equal(out.tokens, batch.row_to_tokens(out.rows))
        assert bool((out.tokens[batch.action_mask == 0] == 0).all())
        assert all(isinstance(v, float) for v in out.metrics.values())
    # task 0 has a success and a failure: every estimator must tell them apart
    assert out.rows[0] > out.rows[2]


def test_unknown_estimator_suggests_the_nearest() -> None:
    with pytest.raises(LookupError, match="Did you mean 'gigpo'"):
        registries.estimators.get("gigp")
