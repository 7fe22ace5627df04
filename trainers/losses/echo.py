"""ECHO: a language-modelling loss on environment observations, added to the policy loss.

One forward pass, the same token logprobs as the policy loss::

    L     = L_PG(A) + lambda * L_env
    L_env = (1/S) sum_s [ sum_{t in O'_s} -log p(x_t | x_<t) ] / (|O_s| + 1e-3)

over all S segments of the batch (a segment without observation tokens contributes 0, never
NaN). ``O'`` are the target tokens and ``|O|`` the normaliser, chosen by :class:`EchoConfig`:

- ``targets="env"`` (default, the paper's): ``O'`` = ``obs_mask``, the environment's output
  (command output, tool results) without the chat template's role/turn framing.
  ``|O|`` counts the whole observation body, harness-injected warnings included: ``obs_body_mask``
  when the batch has one, otherwise ``obs_mask`` (then ``|O| = |O'|``).
- ``targets="full"``: every non-action token after the segment's first action token (template
  framing and harness text included), plus ``obs_mask`` / ``obs_body_mask`` tokens wherever
  they are. The initial prompt (system prompt, task instruction) is never a target. Here
  ``|O| = |O'|``.

Normalisations: ``norm="observation"`` (``|O|`` as above, default), ``"selected"``
(``|O'|`` per segment, same ``+1e-3``), ``"token-mean"`` (the NLL summed over all target tokens
of the batch, divided by their number ``+ 1e-3``; no per-segment mean).

``lambda`` is 0.05 by default (the paper's productive range is 0.01-0.05; >= 0.1 degrades) and
may follow a schedule (:func:`echo_lambda`). ECHO is an auxiliary term with its own signature,
so it is not in the policy-loss registry; ``train_step(..., echo=EchoConfig())`` adds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from agentgym.trainers.losses.base import LossResult

__all__ = [
    "EchoConfig",
    "EchoNorm",
    "EchoSchedule",
    "EchoTargets",
    "echo_lambda",
    "echo_observation_loss",
    "echo_units",
    "observation_masks",
]

EchoTargets = Literal["env", "full"]
EchoNorm = Literal["observation", "selected", "token-mean"]
EchoSchedule = Literal["constant", "linear", "step"]


@dataclass(frozen=True)
class EchoConfig:
    """Settings of the ECHO observation loss."""

    lam: float = 0.05
    """lambda at step 0 (and throughout under the constant schedule)."""
    targets: EchoTargets = "env"
    """Which tokens are predicted: ``env`` (environment output) or ``full`` (framing too)."""
    norm: EchoNorm = "observation"
    """Per-segment divisor ``|O| + eps`` (``observation``), ``|O'| + eps`` (``selected``), or one
    batch divisor, the number of target tokens ``+ eps`` (``token-mean``)."""
    schedule: EchoSchedule = "constant"
    """``constant``; ``linear`` from ``lam`` to ``final_lam`` over ``decay_steps`` then flat;
    ``step``: ``lam * step_factor ** (step // step_every)``."""
    final_lam: float = 0.0
    decay_steps: int = 1000
    step_every: int = 100
    step_factor: float = 0.5
    eps: float = 1e-3
    """Added to every divisor (per segment, or the batch's target count under ``token-mean``), so
    an empty observation gives 0."""

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("targets", self.targets, get_args(EchoTargets)),
            ("norm", self.norm, get_args(EchoNorm)),
            ("schedule", self.schedule, get_args(EchoSchedule)),
        ):
            if value not in allowed:
                raise ValueError(f"EchoConfig.{name}={value!r} is not one of {', '.join(allowed)}")
        if self.lam < 0 or self.final_lam < 0:
            raise ValueError(f"lambda must be >= 0, got lam={self.lam}, final_lam={self.final_lam}")
        if self.decay_steps <= 0 or self.step_every <= 0:
            raise ValueError("decay_steps and step_every must be positive")
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0 (it keeps empty observations finite), got {self.eps}")


def echo_lambda(config: EchoConfig, step: int) -> float:
    """lambda at optimizer step ``step`` (0-based) under ``config.schedule``.

    >>> echo_lambda(EchoConfig(lam=0.05, schedule="linear", decay_steps=10), 5)
    0.025
    >>> echo_lambda(EchoConfig(lam=0.04, schedule="step", step_every=10, step_factor=0.5), 25)
    0.01
    """
    if config.schedule == "constant":
        return config.lam
    if config.schedule == "linear":
        frac = min(max(step, 0) / config.decay_steps, 1.0)
        return config.lam + (config.final_lam - config.lam) * frac
    return config.lam * config.step_factor ** (max(step, 0) // config.step_every)


def observation_masks(
    obs_mask: Tensor,
    action_mask: Tensor,
    attention_mask: Tensor | None = None,
    obs_body_mask: Tensor | None = None,
    targets: str = "env",
) -> tuple[Tensor, Tensor]:
    """Boolean ``(target, count)`` masks ``[S, L]``: ``O'`` and the tokens counted in ``|O|``.

    See the module docstring for the two target modes. Position 0 is never a target (nothing
    predicts it), but counts in ``|O|``.
    """
    action = action_mask > 0
    valid = attention_mask > 0 if attention_mask is not None else torch.ones_like(action)
    obs = (obs_mask > 0) & valid & ~action
    body = obs | ((obs_body_mask > 0) & valid & ~action) if obs_body_mask is not None else obs
    if targets == "env":
        target, count = obs, body
    elif targets == "full":
        after_first_action = action.long().cumsum(-1) > 0
        target = body | (after_first_action & valid & ~action)
        count = target
    else:
        raise ValueError(f"unknown ECHO targets {targets!r}; expected 'env' or 'full'")
    target = target.clone()
    target[:, 0] = False
    return target, count


def echo_observation_loss(
    logprobs: Tensor, target_mask: Tensor, count_mask: Tensor, config: EchoConfig | None = None
) -> LossResult:
    """``L_env`` (without lambda) from token logprobs ``[S, L]``; see the module docstring.

    >>> import torch
    >>> lp = torch.log(torch.tensor([[1.0, 0.5, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    >>> tgt = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]]).bool()
    >>> round(float(echo_observation_loss(lp, tgt, tgt).loss), 4)  # (2 ln 2 / 2.001 + 0) / 2
    0.3464
    """
    cfg = config if config is not None else EchoConfig()
    tgt = target_mask > 0
    nll = torch.where(tgt, -logprobs, torch.zeros_like(logprobs))
    n_tgt = tgt.sum()
    if cfg.norm == "token-mean":
        loss = nll.sum() / (n_tgt.to(nll.dtype) + cfg.eps)
    else:
        denom_mask = count_mask > 0 if cfg.norm == "observation" else tgt
        per_seq = nll.sum(-1) / (denom_mask.sum(-1).to(nll.dtype) + cfg.eps)
        loss = per_seq.mean() if per_seq.numel() else nll.sum()
    metrics = {
        "echo_loss": float(loss.detach()),
        "echo_nll": float(nll.detach().sum() / n_tgt.clamp(min=1)),
        "echo_tokens": float(n_tgt),
    }
    return LossResult(loss, metrics, agg=f"echo:{cfg.norm}")


def echo_units(target_mask: Tensor, config: EchoConfig) -> float:
    """The divisor of :func:`echo_observation_loss` at batch level: the number of target tokens
    ``+ eps`` for ``token-mean``, else the number of segments.

    Weighting a micro-batch's loss by ``echo_units(micro) / echo_units(batch)`` reproduces the
    full-batch loss exactly (``sum_mb S_mb / (n_mb + eps) * (n_mb + eps) / (n + eps) = S / (n + eps)``).
    """
    if config.norm == "token-mean":
        return float((target_mask > 0).sum().item()) + config.eps
    return float(target_mask.shape[0])
