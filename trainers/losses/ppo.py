"""PPO-clip with dual clip, and its registered variants DAPO (clip-higher) and Dr.GRPO.

Per token, with ``r = exp(clamp(logp - old_logp, -20, 20))``::

    l    = max(-A r, -A clip(r, 1 - eps_lo, 1 + eps_hi))
    l    = min(l, -A c)            only where A < 0 (dual clip, c = 3; off when c is None)
    loss = aggregate(l, mask, agg) + kl_coef * aggregate(low_var_kl, mask, agg)

This is verl's ``vanilla`` policy loss. Metrics (token means over the mask): ``pg_clipfrac``
(tokens where the clipped branch is the max), ``pg_clipfrac_lower`` (dual clip active),
``ppo_kl`` (``mean(old_logp - logp)``, k1), ``ratio_mean``, ``ratio_max``, ``ratio_min``.
"""

from __future__ import annotations

from torch import Tensor

from agentgym.trainers.losses.base import (
    LOG_RATIO_CLAMP,
    LossConfig,
    LossResult,
    aggregate,
    kl_term,
    masked_mean,
)

__all__ = [
    "DAPO_DEFAULTS",
    "DR_GRPO_DEFAULTS",
    "PPO_DEFAULTS",
    "dapo_loss",
    "dr_grpo_loss",
    "ppo_clip_loss",
]

PPO_DEFAULTS = LossConfig()
DAPO_DEFAULTS = LossConfig(eps_hi=0.28)
"""DAPO's clip-higher; token-mean aggregation and dual clip c = 3 kept from PPO (the DAPO recipe
in verl also raises ``clip_ratio_c`` to 10, which only matters for very stale tokens)."""
DR_GRPO_DEFAULTS = LossConfig(agg="seq-mean-token-sum-norm")


def ppo_clip_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: LossConfig | None = None,
    *,
    ref_logprobs: Tensor | None = None,
) -> LossResult:
    """PPO clipped surrogate with dual clip; see the module docstring for the formula.

    >>> import torch
    >>> lp = torch.zeros(1, 3)
    >>> out = ppo_clip_loss(lp, lp, torch.ones(1, 3), torch.tensor([[0.0, 1.0, 1.0]]))
    >>> float(out.loss), out.metrics["pg_clipfrac"]
    (-1.0, 0.0)
    """
    cfg = config if config is not None else PPO_DEFAULTS
    sel = mask > 0
    log_ratio = (logprobs - old_logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = log_ratio.exp()
    loss1 = -advantages * ratio
    loss2 = -advantages * ratio.clamp(1.0 - cfg.eps_lo, 1.0 + cfg.eps_hi)
    clipped = loss1.maximum(loss2)
    metrics = {"pg_clipfrac": float(masked_mean((loss2 > loss1).float(), mask))}
    if cfg.dual_clip_c is not None:
        loss3 = -advantages * cfg.dual_clip_c
        neg = advantages < 0
        tok_loss = clipped.minimum(loss3).where(neg, clipped)
        metrics["pg_clipfrac_lower"] = float(masked_mean(((clipped > loss3) & neg).float(), mask))
    else:
        tok_loss = clipped
        metrics["pg_clipfrac_lower"] = 0.0
    pg = aggregate(tok_loss, mask, cfg.agg, cfg.norm_length)
    metrics.update(_ratio_metrics(log_ratio, ratio, sel))
    kl, kl_metrics = kl_term(logprobs, ref_logprobs, mask, cfg, cfg.agg)
    total = pg if kl is None else pg + cfg.kl_coef * kl
    metrics.update(kl_metrics)
    metrics["pg_loss"] = float(pg.detach())
    metrics["loss"] = float(total.detach())
    return LossResult(total, metrics, cfg.agg)


def dapo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: LossConfig | None = None,
    *,
    ref_logprobs: Tensor | None = None,
) -> LossResult:
    """PPO-clip with DAPO's clip-higher defaults (``eps_hi = 0.28``, token-mean).

    A ``config`` passed explicitly is used as given.
    """
    cfg = config if config is not None else DAPO_DEFAULTS
    return ppo_clip_loss(logprobs, old_logprobs, advantages, mask, cfg, ref_logprobs=ref_logprobs)


def dr_grpo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: LossConfig | None = None,
    *,
    ref_logprobs: Tensor | None = None,
) -> LossResult:
    """PPO-clip aggregated with Dr.GRPO's ``seq-mean-token-sum-norm`` (constant divisor).

    Pair it with the ``dr_grpo`` advantage estimator (no std). A ``config`` passed explicitly is
    used as given; set ``norm_length`` to a constant for runs where the padded length varies.
    """
    cfg = config if config is not None else DR_GRPO_DEFAULTS
    return ppo_clip_loss(logprobs, old_logprobs, advantages, mask, cfg, ref_logprobs=ref_logprobs)


def _ratio_metrics(log_ratio: Tensor, ratio: Tensor, sel: Tensor) -> dict[str, float]:
    if not bool(sel.any()):
        return {"ppo_kl": 0.0, "ratio_mean": 1.0, "ratio_max": 1.0, "ratio_min": 1.0}
    r = ratio.detach()[sel]
    return {
        "ppo_kl": float(-log_ratio.detach()[sel].mean()),
        "ratio_mean": float(r.mean()),
        "ratio_max": float(r.max()),
        "ratio_min": float(r.min()),
    }
