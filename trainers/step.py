"""The training step: one batch of segments, one optimizer update.

::

    adv_T = batch.row_to_tokens(estimator(batch, config).rows)
    metrics = train_step(model, optimizer, batch, adv_T, loss="ppo-clip", echo=EchoConfig())

For every micro-batch of segments: one forward pass gives the token logprobs
(:func:`compute_token_logprobs`); the policy loss reads them on the action mask and ECHO (when
enabled) on the observation tokens, from the same logprobs::

    L = L_PG(logp, old_logp, A) [+ kl_coef * KL] + lambda(step) * L_env

Each micro-batch's terms are weighted by its share of the units the full-batch loss averages
over (tokens for token means, segments for sequence means; see
:func:`agentgym.trainers.losses.base.agg_units`), so accumulating gradients over micro-batches
gives the same gradient as one pass over the whole batch, whatever the micro-batch size. Then
the gradient is clipped by global norm and the optimizer steps once; a non-finite gradient
norm skips the update (``metrics["skipped"] = 1``), as verl does.

A batch is padded to its longest sequence (estimators need one ``[S, L]`` shape), but each
micro-batch runs the model only up to its own longest real sequence: trailing columns where no
sequence of the micro-batch has an attended token are cut before the forward pass and the
logprobs padded back with zeros (what padding gets anyway), so one long episode does not make
every micro-batch long, and losses that read ``L`` (``seq-mean-token-sum-norm``) see the same
``L``. Only trailing padding is cut: left padding is forwarded as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from agentgym import registries
from agentgym.trainers.losses.base import LossConfig, PolicyLoss, agg_units
from agentgym.trainers.losses.echo import (
    EchoConfig,
    echo_lambda,
    echo_observation_loss,
    echo_units,
    observation_masks,
)

__all__ = ["TokenBatch", "compute_token_logprobs", "train_step"]

# How train_step combines one metric across micro-batches; anything else is a token-weighted mean.
_SUMMED_BY_LOSS_WEIGHT = ("loss", "pg_loss", "kl_loss")


class TokenBatch(Protocol):
    """The token fields :func:`train_step` reads; :class:`agentgym.trainers.batch.StepBatch` has
    them. All are ``[S, L]``; an optional ``obs_body_mask`` (ECHO's ``|O|``) and
    ``ref_logprobs`` (reference-policy logprobs for the KL term) are read when present."""

    @property
    def input_ids(self) -> Tensor: ...
    @property
    def attention_mask(self) -> Tensor: ...
    @property
    def action_mask(self) -> Tensor: ...
    @property
    def obs_mask(self) -> Tensor: ...
    @property
    def old_logprobs(self) -> Tensor: ...


def compute_token_logprobs(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None, temperature: float = 1.0,
    entropy_out: list[Tensor] | None = None,
) -> Tensor:
    """``logprobs[s, t] = log softmax(logits[s, t-1] / T)[input_ids[s, t]]``, float32 ``[S, L]``.

    The sampler's distribution: logits divided by the sampling temperature ``T`` before the
    softmax, so the values are comparable with the engine's recorded logprobs. Position 0 (no
    context) and padding get 0. Position ids come from the attention mask, so left and right
    padding both give each sequence the positions it had when it was sampled. With
    ``entropy_out``, the entropy of each position's sampling distribution (no gradient, same
    layout, 0 at position 0 and on padding) is appended to it.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (greedy samples have no logprob to train on), got {temperature}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    logits = out.logits if hasattr(out, "logits") else out[0]
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    all_lp = torch.log_softmax(logits, dim=-1)
    lp = all_lp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    lp = torch.cat([lp.new_zeros(lp.shape[0], 1), lp], dim=1)
    if entropy_out is not None:
        with torch.no_grad():
            ent = -(all_lp.exp() * all_lp).sum(-1)
            ent = torch.cat([ent.new_zeros(ent.shape[0], 1), ent], dim=1)
            entropy_out.append(torch.where(attention_mask > 0, ent, torch.zeros_like(ent)))
    return torch.where(attention_mask > 0, lp, torch.zeros_like(lp))


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: TokenBatch,
    advantages_tokens: Tensor,
    *,
    loss: str | PolicyLoss = "ppo-clip",
    loss_config: LossConfig | None = None,
    echo: EchoConfig | None = None,
    micro_batch_size: int | None = None,
    max_grad_norm: float | None = 1.0,
    temperature: float = 1.0,
    step: int = 0,
    ref_model: nn.Module | None = None,
) -> dict[str, float]:
    """One optimizer update from ``batch``; returns float metrics.

    Args:
        model: a causal LM (``model(input_ids, attention_mask, position_ids).logits``). Its
            train/eval mode is left as it is.
        optimizer: steps once; gradients are zeroed at the start (and left in place after).
        batch: token fields ``[S, L]`` (see :class:`TokenBatch`).
        advantages_tokens: float ``[S, L]``, e.g. ``batch.row_to_tokens(adv_rows)``.
        loss: a registered loss id (``registries.losses``) or a :class:`PolicyLoss`.
        loss_config: passed to the loss; ``None`` means the loss's own defaults.
        echo: add the ECHO observation loss with ``lambda = echo_lambda(echo, step)``.
        micro_batch_size: segments per forward pass (``None``: all at once). Each forward pass
            is trimmed to the micro-batch's longest real sequence (see the module docstring);
            losses still see ``[*, L]`` tensors.
        max_grad_norm: clip the global gradient norm to this (``None``: no clipping).
        temperature: the sampling temperature the old logprobs were recorded at.
        step: optimizer step index, for the ECHO lambda schedule.
        ref_model: reference policy for the KL term (``loss_config.kl_coef > 0``), unless the
            batch carries ``ref_logprobs``.

    Returns:
        ``loss`` (the full-batch objective), ``pg_loss``, ``kl_loss`` (with KL),
        ``echo_loss``/``echo_lambda``/``echo_nll``/``echo_tokens`` (with ECHO), the loss's
        token metrics (``pg_clipfrac``, ``ppo_kl``, ``ratio_mean`` ...), ``grad_norm`` (before
        clipping), ``skipped``, ``lr``, ``action_tokens``, ``sequences``, ``micro_batches``,
        ``forward_tokens`` (token positions the policy model ran on, padding included),
        ``entropy`` (mean entropy of the policy's distribution over the action tokens, before
        the update).
    """
    loss_fn: PolicyLoss = registries.losses.get(loss) if isinstance(loss, str) else loss
    input_ids, attention = batch.input_ids, batch.attention_mask
    action, old_lp = batch.action_mask, batch.old_logprobs
    num_seqs = int(input_ids.shape[0])
    if num_seqs == 0:
        raise ValueError("train_step got a batch with no token sequences; build it with token fields")
    for name, t in (("attention_mask", attention), ("action_mask", action), ("old_logprobs", old_lp),
                    ("advantages_tokens", advantages_tokens)):
        if t.shape != input_ids.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected input_ids' {tuple(input_ids.shape)}")
    ref_lp_all: Tensor | None = getattr(batch, "ref_logprobs", None)
    mbs = num_seqs if micro_batch_size is None else int(micro_batch_size)
    if mbs <= 0:
        raise ValueError(f"micro_batch_size must be positive, got {micro_batch_size}")

    target: Tensor | None = None
    count: Tensor | None = None
    lam = 0.0
    echo_total = 0.0
    if echo is not None:
        target, count = observation_masks(batch.obs_mask, action, attention, getattr(batch, "obs_body_mask", None),
                                          echo.targets)
        lam = echo_lambda(echo, step)
        echo_total = echo_units(target, echo)
    n_target = int(target.sum()) if target is not None else 0
    use_echo = echo is not None and lam > 0 and n_target > 0

    device = next(model.parameters()).device
    n_action = int((action > 0).sum())
    pg_total: int | None = None  # units of the loss's aggregation, known once it has run
    sums: dict[str, float] = {}
    maxes: dict[str, float] = {}
    mins: dict[str, float] = {}
    n_micro = 0
    n_forward = 0
    entropy_sum = 0.0
    length = int(input_ids.shape[1])

    optimizer.zero_grad(set_to_none=True)
    for lo in range(0, num_seqs, mbs):
        sl = slice(lo, lo + mbs)
        mb_action = action[sl]
        mb_target = target[sl] if target is not None else None
        mb_has_env = use_echo and mb_target is not None and bool(mb_target.any())
        if not bool((mb_action > 0).any()) and not mb_has_env:
            continue  # contributes exactly 0 to every term
        n_micro += 1
        width = _real_width(attention[sl])
        ids = input_ids[sl, :width].to(device)
        att = attention[sl, :width].to(device)
        n_forward += int(ids.numel())
        ents: list[Tensor] = []
        logp = _pad_right(compute_token_logprobs(model, ids, att, temperature, entropy_out=ents), length)
        mb_act = mb_action.to(device) > 0
        entropy_sum += float(_pad_right(ents[0], length)[mb_act].sum())
        ref_lp = None
        if ref_lp_all is not None:
            ref_lp = ref_lp_all[sl].to(device)
        elif ref_model is not None:
            with torch.no_grad():
                ref_lp = _pad_right(compute_token_logprobs(ref_model, ids, att, temperature), length)
        total = logp.new_zeros(())
        if bool((mb_action > 0).any()):
            res = loss_fn(logp, old_lp[sl].to(device), advantages_tokens[sl].to(device), mb_action.to(device),
                          loss_config, ref_logprobs=ref_lp)
            if pg_total is None:
                pg_total = agg_units(action, res.agg)
            w_pg = agg_units(mb_action, res.agg) / pg_total
            total = total + res.loss * w_pg
            _accumulate(res.metrics, w_pg, int((mb_action > 0).sum()) / n_action, sums, maxes, mins)
        if mb_has_env and echo is not None and mb_target is not None and count is not None:
            env = echo_observation_loss(logp, mb_target.to(device), count[sl].to(device), echo)
            w_env = echo_units(mb_target, echo) / echo_total
            total = total + lam * w_env * env.loss
            sums["echo_loss"] = sums.get("echo_loss", 0.0) + w_env * env.metrics["echo_loss"]
            sums["echo_nll"] = sums.get("echo_nll", 0.0) + env.metrics["echo_nll"] * env.metrics["echo_tokens"] / n_target
            sums["loss"] = sums.get("loss", 0.0) + lam * w_env * env.metrics["echo_loss"]
        if total.requires_grad:
            total.backward()

    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = _clip_grad_norm(params, max_grad_norm)
    skipped = not torch.isfinite(grad_norm).item()
    if skipped:
        optimizer.zero_grad(set_to_none=True)
    else:
        optimizer.step()

    metrics: dict[str, float] = {"loss": 0.0, "pg_loss": 0.0, **sums, **maxes, **mins}
    if echo is not None:
        metrics.setdefault("echo_loss", 0.0)
        metrics.setdefault("echo_nll", 0.0)
        metrics["echo_lambda"] = lam
        metrics["echo_tokens"] = float(n_target)
    metrics.update(
        grad_norm=float(grad_norm),
        skipped=float(skipped),
        lr=float(optimizer.param_groups[0].get("lr", 0.0)),
        action_tokens=float(n_action),
        sequences=float(num_seqs),
        micro_batches=float(n_micro),
        forward_tokens=float(n_forward),
        entropy=entropy_sum / n_action if n_action else 0.0,
    )
    return metrics


def _real_width(attention: Tensor) -> int:
    """Columns up to and including the last one where any sequence has an attended token (>= 1)."""
    cols = torch.nonzero((attention > 0).any(0))
    return int(cols.max()) + 1 if cols.numel() else 1


def _pad_right(x: Tensor, length: int) -> Tensor:
    """``[B, W]`` -> ``[B, length]`` with zeros on the right (differentiable)."""
    return x if x.shape[1] == length else torch.nn.functional.pad(x, (0, length - x.shape[1]))


def _accumulate(metrics: dict[str, float], w_loss: float, w_tok: float, sums: dict[str, float],
                maxes: dict[str, float], mins: dict[str, float]) -> None:
    for key, value in metrics.items():
        if key.endswith("_max"):
            maxes[key] = max(maxes.get(key, value), value)
        elif key.endswith("_min"):
            mins[key] = min(mins.get(key, value), value)
        else:
            w = w_loss if key in _SUMMED_BY_LOSS_WEIGHT else w_tok
            sums[key] = sums.get(key, 0.0) + w * value


def _clip_grad_norm(params: Iterable[nn.Parameter], max_norm: float | None) -> Tensor:
    """Global L2 gradient norm before clipping (clipping in place when ``max_norm`` is set)."""
    with_grad: list[Any] = [p for p in params if p.grad is not None]
    if not with_grad:
        return torch.zeros(())
    limit = float("inf") if max_norm is None else max_norm
    return torch.nn.utils.clip_grad_norm_(with_grad, limit).detach().cpu()
