"""Policy losses: vectorised versions against plain loops, aggregation, registry, edge cases."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from agentgym import registries
from agentgym.errors import RegistryError
from agentgym.trainers.losses.base import (
    AGG_MODES,
    LossConfig,
    agg_units,
    aggregate,
    low_var_kl,
)
from agentgym.trainers.losses.gspo import GSPO_DEFAULTS, gspo_loss
from agentgym.trainers.losses.ppo import DAPO_DEFAULTS, dapo_loss, dr_grpo_loss, ppo_clip_loss
from agentgym.trainers.losses.reference import ref_aggregate, ref_gspo, ref_low_var_kl, ref_ppo_clip

torch.set_num_threads(1)


def random_inputs(seed: int, S: int = 5, L: int = 9, spread: float = 0.5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(S, L, generator=g, dtype=torch.float64) * 3
    new = old + torch.randn(S, L, generator=g, dtype=torch.float64) * spread
    ref = old + torch.randn(S, L, generator=g, dtype=torch.float64) * spread
    adv = torch.randn(S, L, generator=g, dtype=torch.float64)
    mask = (torch.rand(S, L, generator=g) < 0.6).double()
    mask[:, 0] = 0
    mask[-1] = 0  # one segment without trained tokens
    # masked-out positions may hold anything; they must not matter
    new = torch.where(mask > 0, new, torch.full_like(new, float("nan")))
    return {"new": new, "old": old, "ref": ref, "adv": adv, "mask": mask}


def rows(x: torch.Tensor) -> list[list[float]]:
    return x.tolist()


@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("seed", range(3))
def test_aggregate_matches_loop(mode: str, seed: int) -> None:
    x = random_inputs(seed)
    tok = torch.randn(5, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    for norm in (None, 4.0):
        got = float(aggregate(tok, x["mask"], mode, norm))
        assert got == pytest.approx(ref_aggregate(rows(tok), rows(x["mask"]), mode, norm), abs=1e-12)


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregate_of_empty_mask_is_zero(mode: str) -> None:
    tok = torch.full((3, 4), float("nan"))
    out = aggregate(tok, torch.zeros(3, 4), mode)
    assert float(out) == 0.0


@pytest.mark.parametrize("mode", AGG_MODES)
def test_micro_batches_weighted_by_units_reproduce_full_aggregate(mode: str) -> None:
    x = random_inputs(7, S=6)
    tok = torch.randn(6, 9, dtype=torch.float64)
    full = float(aggregate(tok, x["mask"], mode))
    total_units = agg_units(x["mask"], mode)
    acc = 0.0
    for lo in range(0, 6, 4):
        m = x["mask"][lo : lo + 4]
        acc += float(aggregate(tok[lo : lo + 4], m, mode)) * agg_units(m, mode) / total_units
    assert acc == pytest.approx(full, abs=1e-12)


CONFIGS = [
    LossConfig(),
    LossConfig(eps_hi=0.28),
    LossConfig(dual_clip_c=None, agg="seq-mean-token-mean"),
    LossConfig(agg="seq-mean-token-sum", kl_coef=0.1),
    LossConfig(agg="seq-mean-token-sum-norm"),
    LossConfig(agg="seq-mean-token-sum-norm", norm_length=32.0, kl_coef=0.01),
    LossConfig(eps_lo=0.1, eps_hi=0.3, dual_clip_c=1.5),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.agg}-{c.eps_hi}-{c.dual_clip_c}-{c.kl_coef}")
@pytest.mark.parametrize("seed", range(4))
def test_ppo_clip_matches_loop(cfg: LossConfig, seed: int) -> None:
    x = random_inputs(seed, spread=0.6)  # big enough that clipping and the dual clip both trigger
    new = torch.where(x["mask"] > 0, x["new"], x["old"])  # loop version has no NaN guard
    out = ppo_clip_loss(x["new"], x["old"], x["adv"], x["mask"], cfg, ref_logprobs=x["ref"])
    want, clipfrac = ref_ppo_clip(rows(new), rows(x["old"]), rows(x["adv"]), rows(x["mask"]), cfg, rows(x["ref"]))
    assert float(out.loss) == pytest.approx(want, abs=1e-10)
    assert out.metrics["pg_clipfrac"] == pytest.approx(clipfrac, abs=1e-6)
    assert out.agg == cfg.agg
    assert math.isfinite(out.metrics["ratio_mean"])


@pytest.mark.parametrize("cfg", [GSPO_DEFAULTS, LossConfig(eps_lo=0.05, eps_hi=0.05, kl_coef=0.2)])
@pytest.mark.parametrize("seed", range(4))
def test_gspo_matches_loop(cfg: LossConfig, seed: int) -> None:
    x = random_inputs(seed, spread=0.1)
    new = torch.where(x["mask"] > 0, x["new"], x["old"])
    out = gspo_loss(x["new"], x["old"], x["adv"], x["mask"], cfg, ref_logprobs=x["ref"])
    want = ref_gspo(rows(new), rows(x["old"]), rows(x["adv"]), rows(x["mask"]), cfg, rows(x["ref"]))
    assert float(out.loss) == pytest.approx(want, abs=1e-10)
    assert out.agg == "seq-mean-token-mean"


def test_gspo_ignores_agg_and_dual_clip() -> None:
    x = random_inputs(3, spread=0.1)
    a = gspo_loss(x["new"], x["old"], x["adv"], x["mask"], LossConfig(agg="token-mean", dual_clip_c=3.0))
    b = gspo_loss(x["new"], x["old"], x["adv"], x["mask"], LossConfig(agg="seq-mean-token-sum", dual_clip_c=None))
    assert float(a.loss) == float(b.loss)


def test_gspo_gradient_equals_sequence_objective_gradient() -> None:
    """With one advantage per sequence, GSPO-token's gradient is the sequence objective's."""
    x = random_inputs(11, spread=0.05)
    mask = x["mask"]
    adv = x["adv"][:, :1].expand_as(mask).contiguous()
    cfg = LossConfig(eps_lo=0.02, eps_hi=0.03)
    new = torch.where(mask > 0, x["new"], x["old"])

    lp1 = new.clone().requires_grad_(True)
    gspo_loss(lp1, x["old"], adv, mask, cfg).loss.backward()

    lp2 = new.clone().requires_grad_(True)
    sel = mask > 0
    n = sel.sum(-1).clamp(min=1)
    s = ((torch.where(sel, lp2 - x["old"], torch.zeros_like(lp2))).sum(-1) / n).exp()
    a = adv[:, 0]
    per_seq = torch.maximum(-a * s, -a * s.clamp(1 - cfg.eps_lo, 1 + cfg.eps_hi))
    has = sel.any(-1)
    (per_seq[has].sum() / has.sum()).backward()
    assert lp1.grad is not None and lp2.grad is not None
    torch.testing.assert_close(lp1.grad, lp2.grad, atol=1e-12, rtol=1e-9)


def test_low_var_kl_matches_loop_and_is_clamped() -> None:
    lp = torch.tensor([[-1.0, -2.0, -30.0, 0.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.5, -0.1, -0.01, -40.0]], dtype=torch.float64)
    got = low_var_kl(lp, ref)
    want = [ref_low_var_kl(a, b) for a, b in zip(lp[0].tolist(), ref[0].tolist(), strict=True)]
    assert got[0].tolist() == pytest.approx(want)
    assert float(got.max()) == 10.0  # exp(20) - 21 clamped
    assert float(low_var_kl(lp, lp).abs().max()) == 0.0


def test_dual_clip_bounds_negative_advantage_loss() -> None:
    # ratio 10 (very stale token), A = -1: unclipped loss 10, dual clip caps it at c = 3
    lp = torch.tensor([[0.0, math.log(10.0)]])
    old = torch.zeros(1, 2)
    adv = torch.tensor([[0.0, -1.0]])
    mask = torch.tensor([[0.0, 1.0]])
    out = ppo_clip_loss(lp, old, adv, mask)
    assert float(out.loss) == pytest.approx(3.0)
    assert out.metrics["pg_clipfrac_lower"] == 1.0
    off = ppo_clip_loss(lp, old, adv, mask, LossConfig(dual_clip_c=None))
    assert float(off.loss) == pytest.approx(10.0)


def test_dapo_clip_higher() -> None:
    lp = torch.tensor([[0.0, math.log(1.25)]])
    args = (lp, torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([[0.0, 1.0]]))
    assert float(ppo_clip_loss(*args).loss) == pytest.approx(-1.2)  # clipped at 1 + 0.2
    assert float(dapo_loss(*args).loss) == pytest.approx(-1.25)  # inside 1 + 0.28
    assert DAPO_DEFAULTS.eps_hi == 0.28 and DAPO_DEFAULTS.eps_lo == 0.2


def test_dr_grpo_divides_by_constant() -> None:
    lp = torch.zeros(2, 6)
    mask = torch.tensor([[0, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 0]], dtype=torch.float32)
    out = dr_grpo_loss(lp, lp, torch.ones(2, 6), mask)
    assert float(out.loss) == pytest.approx(-(2 / 6 + 4 / 6) / 2)
    out = dr_grpo_loss(lp, lp, torch.ones(2, 6), mask, LossConfig(agg="seq-mean-token-sum-norm", norm_length=10))
    assert float(out.loss) == pytest.approx(-(2 / 10 + 4 / 10) / 2)


def test_first_step_ratio_is_one_and_nothing_clips() -> None:
    x = random_inputs(0)
    for fn in (ppo_clip_loss, dapo_loss, dr_grpo_loss, gspo_loss):
        out = fn(x["old"], x["old"], x["adv"], x["mask"])
        assert out.metrics["pg_clipfrac"] == 0.0
        assert out.metrics["ratio_mean"] == 1.0
        assert out.metrics["ppo_kl"] == 0.0


@pytest.mark.parametrize("name", ["ppo-clip", "dapo", "dr-grpo", "gspo"])
def test_losses_are_registered_with_one_signature(name: str) -> None:
    fn = registries.losses.get(name)
    x = random_inputs(1)
    out = fn(x["new"], x["old"], x["adv"], x["mask"], None, ref_logprobs=None)
    assert out.loss.ndim == 0 and math.isfinite(float(out.loss))
    assert {"loss", "pg_loss", "pg_clipfrac", "ppo_kl", "ratio_mean"} <= set(out.metrics)


def test_unknown_loss_suggests_nearest() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'ppo-clip'"):
        registries.losses.get("ppo-clp")


def test_empty_mask_gives_zero_loss_and_zero_grad() -> None:
    lp = torch.zeros(2, 4, requires_grad=True)
    for fn in (ppo_clip_loss, gspo_loss, dr_grpo_loss):
        out = fn(lp, torch.zeros(2, 4), torch.ones(2, 4), torch.zeros(2, 4))
        out.loss.backward()
        assert float(out.loss.detach()) == 0.0
        assert lp.grad is not None and float(lp.grad.abs().sum()) == 0.0


def test_kl_needs_reference_logprobs() -> None:
    x = random_inputs(0)
    with pytest.raises(ValueError, match="ref_logprobs"):
        ppo_clip_loss(x["new"], x["old"], x["adv"], x["mask"], LossConfig(kl_coef=0.1))


@pytest.mark.parametrize(
    "kwargs",
    [{"agg": "seq-sum"}, {"dual_clip_c": 1.0}, {"eps_lo": 1.0}, {"norm_length": 0.0}, {"kl_coef": -1.0}],
)
def test_bad_config_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LossConfig(**kwargs)
