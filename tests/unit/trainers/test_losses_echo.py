"""ECHO observation loss: masks, normalisations, schedules, against a plain loop."""

from __future__ import annotations

import math

import pytest
import torch

from agentgym.trainers.losses.echo import (
    EchoConfig,
    echo_lambda,
    echo_observation_loss,
    echo_units,
    observation_masks,
)
from agentgym.trainers.losses.reference import ref_echo

torch.set_num_threads(1)

# One segment, token by token:  P = initial prompt, F = template framing, O = environment output,
# W = harness warning (observation body, not environment output), A = action, _ = padding.
LAYOUT = "PPPAAFOOWOFAAFOO__"


def masks_from(layout: str) -> dict[str, torch.Tensor]:
    def m(chars: str) -> torch.Tensor:
        return torch.tensor([[1.0 if c in chars else 0.0 for c in layout]])

    return {
        "action": m("A"), "obs": m("O"), "body": m("OW"),
        "attention": m("PAFOW"),
    }


def test_env_targets_are_environment_output_and_count_the_body() -> None:
    k = masks_from(LAYOUT)
    target, count = observation_masks(k["obs"], k["action"], k["attention"], k["body"], "env")
    assert target[0].tolist() == [c == "O" for c in LAYOUT]
    assert count[0].tolist() == [c in "OW" for c in LAYOUT]
    # without a body mask, |O| falls back to the environment tokens themselves
    target2, count2 = observation_masks(k["obs"], k["action"], k["attention"], None, "env")
    assert torch.equal(target2, target) and torch.equal(count2, target)


def test_full_targets_include_framing_but_not_prompt_actions_or_padding() -> None:
    k = masks_from(LAYOUT)
    target, count = observation_masks(k["obs"], k["action"], k["attention"], k["body"], "full")
    assert target[0].tolist() == [c in "FOW" for c in LAYOUT]
    assert torch.equal(count, target)


def test_position_zero_is_never_a_target() -> None:
    obs = torch.tensor([[1.0, 1.0, 0.0]])
    target, count = observation_masks(obs, torch.zeros(1, 3), None, None, "env")
    assert target[0].tolist() == [False, True, False]
    assert int(count.sum()) == 2


def test_loss_formula_by_hand() -> None:
    k = masks_from(LAYOUT)
    lp = -torch.arange(1, len(LAYOUT) + 1, dtype=torch.float64).unsqueeze(0) / 10
    target, count = observation_masks(k["obs"], k["action"], k["attention"], k["body"], "env")
    nll = sum((i + 1) / 10 for i, c in enumerate(LAYOUT) if c == "O")
    out = echo_observation_loss(lp, target, count)
    assert float(out.loss) == pytest.approx(nll / (6 + 1e-3))  # |O| = 5 env + 1 warning
    out = echo_observation_loss(lp, target, count, EchoConfig(norm="selected"))
    assert float(out.loss) == pytest.approx(nll / (5 + 1e-3))
    assert out.metrics["echo_tokens"] == 5


def test_token_mean_divides_by_target_count_plus_eps() -> None:
    # the reference's token mean: sum of the targets' NLL over the batch / (|O'| + 1e-3), like the
    # per-segment normalisations (not / |O'|)
    k = masks_from(LAYOUT)
    lp = -torch.arange(1, len(LAYOUT) + 1, dtype=torch.float64).unsqueeze(0) / 10
    target, count = observation_masks(k["obs"], k["action"], k["attention"], k["body"], "env")
    nll = sum((i + 1) / 10 for i, c in enumerate(LAYOUT) if c == "O")
    cfg = EchoConfig(norm="token-mean")
    out = echo_observation_loss(lp, target, count, cfg)
    assert float(out.loss) == pytest.approx(nll / (5 + 1e-3), rel=1e-12)
    assert out.metrics["echo_nll"] == pytest.approx(nll / 5)  # the metric stays the plain mean NLL
    want = ref_echo(lp.tolist(), k["obs"].tolist(), k["action"].tolist(), k["attention"].tolist(),
                    k["body"].tolist(), cfg)
    assert want == pytest.approx(nll / (5 + 1e-3), rel=1e-12)


def test_segment_without_observations_contributes_zero_not_nan() -> None:
    lp = torch.full((2, 4), -1.0, requires_grad=True)
    target = torch.tensor([[False, True, True, False], [False, False, False, False]])
    for norm in ("observation", "selected", "token-mean"):
        out = echo_observation_loss(lp, target, target, EchoConfig(norm=norm))
        assert math.isfinite(float(out.loss.detach()))
        want = 2 / (2 + 1e-3) / 2 if norm != "token-mean" else 2 / (2 + 1e-3)
        assert float(out.loss.detach()) == pytest.approx(want)
    empty = torch.zeros(2, 4, dtype=torch.bool)
    out = echo_observation_loss(lp, empty, empty)
    out.loss.backward()
    assert float(out.loss.detach()) == 0.0
    assert lp.grad is not None and float(lp.grad.abs().sum()) == 0.0


def test_gradient_reaches_only_targets() -> None:
    k = masks_from(LAYOUT)
    lp = torch.randn(1, len(LAYOUT), dtype=torch.float64).neg().abs().neg().requires_grad_(True)
    for targets in ("env", "full"):
        lp.grad = None
        target, count = observation_masks(k["obs"], k["action"], k["attention"], k["body"], targets)
        echo_observation_loss(lp, target, count).loss.backward()
        assert lp.grad is not None
        assert torch.equal(lp.grad != 0, target)
        assert bool((lp.grad[target] < 0).all())  # descending raises the targets' logprobs


def random_case(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    S, L = 6, 12
    kind = torch.randint(0, 5, (S, L), generator=g)  # 0 pad 1 action 2 framing 3 env 4 warning
    kind[:, 0] = 2
    kind[-1] = torch.where(kind[-1] == 3, torch.tensor(2), kind[-1])  # a segment with no env output
    return {
        "lp": -torch.rand(S, L, generator=g, dtype=torch.float64) * 4,
        "action": (kind == 1).double(),
        "obs": (kind == 3).double(),
        "body": ((kind == 3) | (kind == 4)).double(),
        "attention": (kind != 0).long(),
    }


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("targets", ["env", "full"])
@pytest.mark.parametrize("norm", ["observation", "selected", "token-mean"])
@pytest.mark.parametrize("with_body", [True, False])
def test_matches_loop(seed: int, targets: str, norm: str, with_body: bool) -> None:
    c = random_case(seed)
    cfg = EchoConfig(targets=targets, norm=norm)
    body = c["body"] if with_body else None
    target, count = observation_masks(c["obs"], c["action"], c["attention"], body, cfg.targets)
    got = float(echo_observation_loss(c["lp"], target, count, cfg).loss)
    want = ref_echo(c["lp"].tolist(), c["obs"].tolist(), c["action"].tolist(), c["attention"].tolist(),
                    None if body is None else body.tolist(), cfg)
    assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("norm", ["observation", "selected", "token-mean"])
def test_micro_batches_weighted_by_units_reproduce_full_loss(norm: str) -> None:
    c = random_case(5)
    cfg = EchoConfig(norm=norm)
    target, count = observation_masks(c["obs"], c["action"], c["attention"], c["body"], "env")
    full = float(echo_observation_loss(c["lp"], target, count, cfg).loss)
    total = echo_units(target, cfg)
    acc = 0.0
    for lo in range(0, 6, 4):
        t, n = target[lo : lo + 4], count[lo : lo + 4]
        acc += float(echo_observation_loss(c["lp"][lo : lo + 4], t, n, cfg).loss) * echo_units(t, cfg) / total
    assert acc == pytest.approx(full, abs=1e-12)


def test_lambda_schedules() -> None:
    assert EchoConfig().lam == 0.05
    const = EchoConfig()
    assert [echo_lambda(const, s) for s in (0, 10, 10_000)] == [0.05, 0.05, 0.05]
    lin = EchoConfig(lam=0.04, schedule="linear", decay_steps=100, final_lam=0.01)
    assert [echo_lambda(lin, s) for s in (0, 50, 100, 500)] == pytest.approx([0.04, 0.025, 0.01, 0.01])
    step = EchoConfig(lam=0.05, schedule="step", step_every=10, step_factor=0.1)
    assert [echo_lambda(step, s) for s in (0, 9, 10, 25)] == pytest.approx([0.05, 0.05, 0.005, 0.0005])


@pytest.mark.parametrize(
    "kwargs", [{"targets": "all"}, {"norm": "mean"}, {"schedule": "cosine"}, {"lam": -1.0}, {"eps": 0.0}]
)
def test_bad_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EchoConfig(**kwargs)
