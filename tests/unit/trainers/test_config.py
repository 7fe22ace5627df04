"""Training configs: TOML files, command-line overrides, refusals that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentgym.errors import ConfigError
from agentgym.trainers.config import TrainConfig, apply_overrides, load_config
from agentgym.trainers.step import compute_token_logprobs

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "train"


@pytest.mark.parametrize("name", ["tiny-cpu.toml", "gpu.toml"])
def test_shipped_examples_load(name: str) -> None:
    cfg = load_config(EXAMPLES / name)
    assert cfg.estimator == "gigpo" and cfg.iterations >= 10


def test_the_tree_example_loads_and_its_tree_table_is_a_tree_rollout_config() -> None:
    from agentgym.trainers.tree_rollout import TreeRolloutConfig

    cfg = load_config(EXAMPLES / "tiny-tree.toml")
    assert (cfg.rollout, cfg.estimator) == ("tree", "tree")
    assert TreeRolloutConfig.from_mapping(cfg.tree).root_fraction == 0.5
    with pytest.raises(ConfigError, match="'independent' or 'tree'"):
        apply_overrides(cfg, ["rollout=forest"])


def test_overrides_parse_values_as_toml_and_reach_tables(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('estimator = "grpo"\niterations = 5\n[loss_config]\neps_lo = 0.1\n')
    cfg = load_config(path, ["estimator=gigpo", "iterations=2", "out=runs/x", "loss_config.eps_hi=0.28",
                             "echo.lam=0.02", "task_ids=['a', 'b']", "skip_groups_without_signal=false"])
    assert (cfg.estimator, cfg.iterations, cfg.out) == ("gigpo", 2, "runs/x")
    assert cfg.loss_config == {"eps_lo": 0.1, "eps_hi": 0.28} and cfg.echo == {"lam": 0.02}
    assert cfg.task_ids == ["a", "b"] and cfg.skip_groups_without_signal is False


@pytest.mark.parametrize("overrides, match", [
    (["lr"], "key=value"),
    (["estimtor=gigpo"], "Did you mean 'estimator'"),
    (["iterations=0"], "iterations must be at least 1"),
    (["temperature=0"], "greedy"),
    (["optimizer=adam"], "'adamw' or 'sgd'"),
    (["max_staleness=-1"], "max_staleness"),
])
def test_bad_configs_are_refused_with_a_reason(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(TrainConfig(), overrides)


def test_unknown_keys_in_a_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("iteratons = 3\n")
    with pytest.raises(ConfigError, match="Did you mean 'iterations'"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_entropy_of_a_uniform_policy_is_log_vocab() -> None:
    class Uniform(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(16))

        def forward(self, input_ids: torch.Tensor, **_: object) -> tuple[torch.Tensor]:
            return (self.bias.expand(*input_ids.shape, 16),)

    ents: list[torch.Tensor] = []
    ids = torch.tensor([[1, 2, 3, 4]])
    compute_token_logprobs(Uniform(), ids, entropy_out=ents)
    assert torch.allclose(ents[0][0, 1:], torch.full((3,), torch.log(torch.tensor(16.0))))
    assert float(ents[0][0, 0]) == 0.0
