"""GSPO: clip a sequence-level importance ratio instead of per-token ratios.

For sequence ``s`` with masked tokens ``T_s``::

    log s_s  = (1/|T_s|) sum_{t in T_s} (logp_t - old_logp_t)          (geometric mean ratio)
    log s_st = sg[log s_s] + logp_t - sg[logp_t]                        (GSPO-token form)
    l_st     = max(-A_st s_st, -A_st clip(s_st, 1 - eps_lo, 1 + eps_hi))
    loss     = seq-mean-token-mean(l) + kl_coef * seq-mean-token-mean(low_var_kl)

``s_st`` equals ``s_s`` in value; its gradient is ``s_s * grad logp_t``, so with one advantage
per sequence this is exactly GSPO's sequence objective, and with step-level advantages (several
steps in one segment) each token keeps its own advantage (GSPO-token). ``log s_st`` is clamped
above at 10, as in verl. No dual clip, and the aggregation is always ``seq-mean-token-mean``:
``config.agg`` and ``config.dual_clip_c`` are ignored.

Defaults follow the GSPO paper and verl's GSPO recipe: ``eps_lo = 3e-4``, ``eps_hi = 4e-4``
(sequence ratios stay much closer to 1 than token ratios).
"""

from __future__ import annotations

import torch
from torch import Tensor

from agentgym.trainers.losses.base import LossConfig, LossResult, aggregate, kl_term, masked_mean

__all__ = ["GSPO_AGG", "GSPO_DEFAULTS", "GSPO_LOG_RATIO_MAX", "gspo_loss"]

GSPO_AGG = "seq-mean-token-mean"
GSPO_LOG_RATIO_MAX = 10.0
GSPO_DEFAULTS = LossConfig(eps_lo=3e-4, eps_hi=4e-4, agg=GSPO_AGG, dual_clip_c=None)


def gspo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    config: LossConfig | None = None,
    *,
    ref_logprobs: Tensor | None = None,
) -> LossResult:
    """GSPO (token form) with a sequence ratio ``exp(mean_t log r_t)``; see the module docstring.

    >>> import torch
    >>> lp = torch.zeros(1, 3)
    >>> out = gspo_loss(lp, lp, torch.ones(1, 3), torch.tensor([[0.0, 1.0, 1.0]]))
    >>> float(out.loss), out.metrics["seq_ratio_mean"]
    (-1.0, 1.0)
    """
    cfg = config if config is not None else GSPO_DEFAULTS
    sel = mask > 0
    log_ratio = torch.where(sel, logprobs - old_logprobs, torch.zeros_like(logprobs))
    n_s = sel.sum(-1).clamp(min=1).to(logprobs.dtype)
    seq_log_ratio = log_ratio.sum(-1) / n_s
    log_s = (logprobs - logprobs.detach() + seq_log_ratio.detach().unsqueeze(-1)).clamp(max=GSPO_LOG_RATIO_MAX)
    s = log_s.exp()
    loss1 = -advantages * s
    loss2 = -advantages * s.clamp(1.0 - cfg.eps_lo, 1.0 + cfg.eps_hi)
    tok_loss = loss1.maximum(loss2)
    pg = aggregate(tok_loss, mask, GSPO_AGG)

    has_tok = sel.any(-1)
    seq_ratio = seq_log_ratio.detach().exp()[has_tok]
    metrics = {
        "pg_clipfrac": float(masked_mean((loss2 > loss1).float(), mask)),
        "pg_clipfrac_lower": 0.0,
        "ppo_kl": float(masked_mean(-log_ratio.detach(), mask)),
        "ratio_mean": float(masked_mean(log_ratio.detach().exp(), mask)) if bool(sel.any()) else 1.0,
        "seq_ratio_mean": float(seq_ratio.mean()) if seq_ratio.numel() else 1.0,
        "seq_ratio_max": float(seq_ratio.max()) if seq_ratio.numel() else 1.0,
        "seq_ratio_min": float(seq_ratio.min()) if seq_ratio.numel() else 1.0,
    }
    kl, kl_metrics = kl_term(logprobs, ref_logprobs, mask, cfg, GSPO_AGG)
    total = pg if kl is None else pg + cfg.kl_coef * kl
    metrics.update(kl_metrics)
    metrics["pg_loss"] = float(pg.detach())
    metrics["loss"] = float(total.detach())
    return LossResult(total, metrics, GSPO_AGG)
