"""What every policy loss shares: its config, its result, token aggregation and the KL term.

Every tensor is ``[S, L]``: S padded segments of L tokens, aligned with ``input_ids``, so
``logprobs[s, t] = log p(x_t | x_<t)`` and position 0 carries no loss. ``mask`` selects the
tokens the loss trains (the action mask); everything else is ignored, whatever its value.

One signature for every registered policy loss (:class:`PolicyLoss`)::

    loss(logprobs, old_logprobs, advantages, mask, config=None, *, ref_logprobs=None) -> LossResult

``config=None`` means the loss's own reference defaults (for example DAPO's clip-higher).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

import torch
from torch import Tensor

__all__ = [
    "AGG_MODES",
    "KL_CLAMP",
    "LOG_RATIO_CLAMP",
    "AggMode",
    "LossConfig",
    "LossResult",
    "PolicyLoss",
    "agg_units",
    "aggregate",
    "kl_term",
    "low_var_kl",
    "masked_mean",
]

AggMode = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
AGG_MODES: tuple[str, ...] = get_args(AggMode)

LOG_RATIO_CLAMP = 20.0
"""|log r_t| is clamped to this before ``exp`` (verl does the same), so a stale token cannot overflow."""
KL_CLAMP = 10.0
"""The k3 (``low_var_kl``) estimate is clamped to ``[-10, 10]`` per token, as in verl."""


@dataclass(frozen=True)
class LossConfig:
    """Hyper-parameters of a policy loss. Defaults are PPO-clip as in verl's ``vanilla`` loss."""

    eps_lo: float = 0.2
    """Lower clip range: the ratio is clipped below at ``1 - eps_lo``."""
    eps_hi: float = 0.2
    """Upper clip range: ``1 + eps_hi`` (DAPO clip-higher uses 0.28)."""
    dual_clip_c: float | None = 3.0
    """Dual clip for negative advantages, ``min(loss, -A * c)``; ``None`` turns it off. Must be > 1."""
    agg: AggMode = "token-mean"
    """How per-token losses become one scalar; see :func:`aggregate`."""
    norm_length: float | None = None
    """Constant divisor of ``seq-mean-token-sum-norm`` (Dr.GRPO's MAX_TOKENS). ``None`` uses the
    padded length L of the batch, as verl does with its response length. Segments here hold the
    prompt and observations too, so L varies from batch to batch: set a constant (for example
    max action tokens per segment) to reproduce Dr.GRPO."""
    kl_coef: float = 0.0
    """Coefficient of the ``low_var_kl`` term against a reference policy; 0 disables it."""

    def __post_init__(self) -> None:
        if self.agg not in AGG_MODES:
            raise ValueError(f"unknown aggregation mode {self.agg!r}; expected one of {', '.join(AGG_MODES)}")
        if not (0.0 <= self.eps_lo < 1.0) or self.eps_hi < 0.0:
            raise ValueError(f"clip ranges must satisfy 0 <= eps_lo < 1 and eps_hi >= 0, got {self.eps_lo}, {self.eps_hi}")
        if self.dual_clip_c is not None and self.dual_clip_c <= 1.0:
            raise ValueError(f"dual_clip_c must be > 1 (or None to disable), got {self.dual_clip_c}")
        if self.norm_length is not None and self.norm_length <= 0:
            raise ValueError(f"norm_length must be positive, got {self.norm_length}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")


@dataclass(frozen=True)
class LossResult:
    """A scalar loss to call ``backward()`` on, and float metrics about it."""

    loss: Tensor
    """Scalar, differentiable."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Token means over the masked tokens unless the key ends in ``_max`` / ``_min``."""
    agg: str = "token-mean"
    """The aggregation mode actually used; the training loop weights micro-batches by
    :func:`agg_units` of this mode so that gradient accumulation matches one full-batch pass."""


class PolicyLoss(Protocol):
    """The one signature of a registered policy loss."""

    def __call__(
        self,
        logprobs: Tensor,
        old_logprobs: Tensor,
        advantages: Tensor,
        mask: Tensor,
        config: LossConfig | None = None,
        *,
        ref_logprobs: Tensor | None = None,
    ) -> LossResult: ...


def aggregate(loss_tok: Tensor, mask: Tensor, mode: str, norm_length: float | None = None) -> Tensor:
    """Reduce per-token losses ``[S, L]`` to a scalar over the tokens where ``mask > 0``.

    With ``m`` the (binary) mask, ``n_s = sum_t m_st`` and ``S' = #{s : n_s > 0}``:

    - ``token-mean``: ``sum_st m l / sum_st m``
    - ``seq-mean-token-sum``: ``(1/S') sum_s sum_t m l``
    - ``seq-mean-token-mean``: ``(1/S') sum_s (sum_t m l) / n_s``
    - ``seq-mean-token-sum-norm`` (Dr.GRPO): ``(1/S') sum_s (sum_t m l) / C`` with
      ``C = norm_length`` or, when ``None``, the padded length ``L``.

    Sequences without a masked token are left out of the sequence mean (verl's newer
    ``seq_mask``); an all-empty mask gives 0, never NaN.
    """
    sel = mask > 0
    m = sel.to(loss_tok.dtype)
    # where(), not multiply: a masked-out inf/NaN must not leak into the sum.
    tok = torch.where(sel, loss_tok, torch.zeros_like(loss_tok))
    if mode == "token-mean":
        return tok.sum() / m.sum().clamp(min=1.0)
    n_s = m.sum(-1)
    seq_sum = tok.sum(-1)
    if mode == "seq-mean-token-sum":
        per_seq = seq_sum
    elif mode == "seq-mean-token-mean":
        per_seq = seq_sum / n_s.clamp(min=1.0)
    elif mode == "seq-mean-token-sum-norm":
        per_seq = seq_sum / float(norm_length if norm_length is not None else mask.shape[-1])
    else:
        raise ValueError(f"unknown aggregation mode {mode!r}; expected one of {', '.join(AGG_MODES)}")
    return per_seq.sum() / (n_s > 0).sum().clamp(min=1).to(per_seq.dtype)


def agg_units(mask: Tensor, mode: str) -> int:
    """How many units :func:`aggregate` averages over: masked tokens for ``token-mean``, else
    sequences holding at least one masked token.

    Splitting a batch into micro-batches and weighting each micro-batch's aggregate by
    ``agg_units(micro) / agg_units(batch)`` reproduces the full-batch aggregate exactly.
    """
    if mode == "token-mean":
        return int((mask > 0).sum().item())
    if mode in AGG_MODES:
        return int(((mask > 0).sum(-1) > 0).sum().item())
    raise ValueError(f"unknown aggregation mode {mode!r}; expected one of {', '.join(AGG_MODES)}")


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the tokens where ``mask`` is set (0 when none)."""
    sel = mask > 0
    return torch.where(sel, x, torch.zeros_like(x)).sum() / sel.sum().clamp(min=1).to(x.dtype)


def low_var_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimate of ``KL(pi || pi_ref)`` (Schulman's low-variance estimator).

    ``k3 = exp(d) - d - 1`` with ``d = clamp(log pi_ref - log pi, -20, 20)``, then clamped to
    ``[-10, 10]`` per token (verl's ``low_var_kl``).
    """
    d = (ref_logprobs - logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (torch.exp(d) - d - 1.0).clamp(-KL_CLAMP, KL_CLAMP)


def kl_term(
    logprobs: Tensor, ref_logprobs: Tensor | None, mask: Tensor, config: LossConfig, mode: str
) -> tuple[Tensor | None, dict[str, float]]:
    """The aggregated ``low_var_kl`` term (or ``None`` when ``kl_coef`` is 0) and its metric."""
    if config.kl_coef == 0.0:
        return None, {}
    if ref_logprobs is None:
        raise ValueError(
            f"kl_coef={config.kl_coef} needs ref_logprobs (the reference policy's token logprobs); "
            "pass ref_logprobs=..., or give train_step a ref_model, or set kl_coef=0"
        )
    kl = aggregate(low_var_kl(logprobs, ref_logprobs), mask, mode, config.norm_length)
    return kl, {"kl_loss": float(kl.detach())}
