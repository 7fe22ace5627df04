"""Plain-loop reference implementations of every loss, for tests only.

Each function walks sequences and tokens in Python floats, written straight from the formulas
in the loss modules' docstrings and ``ALGORITHMS.md``. Tests compare the vectorised versions
against these on random inputs; nothing in training calls them (they are far too slow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agentgym.trainers.losses.base import LossConfig
from agentgym.trainers.losses.echo import EchoConfig

__all__ = ["Matrix", "ref_aggregate", "ref_echo", "ref_gspo", "ref_low_var_kl", "ref_ppo_clip"]

Matrix = Sequence[Sequence[float]]


def ref_aggregate(tok_loss: Matrix, mask: Matrix, mode: str, norm_length: float | None = None) -> float:
    """Loop version of :func:`agentgym.trainers.losses.base.aggregate`."""
    if mode == "token-mean":
        total, n = 0.0, 0
        for row_l, row_m in zip(tok_loss, mask, strict=True):
            for x, m in zip(row_l, row_m, strict=True):
                if m > 0:
                    total += x
                    n += 1
        return total / n if n else 0.0
    per_seq: list[float] = []
    for row_l, row_m in zip(tok_loss, mask, strict=True):
        vals = [x for x, m in zip(row_l, row_m, strict=True) if m > 0]
        if not vals:
            continue
        if mode == "seq-mean-token-sum":
            per_seq.append(sum(vals))
        elif mode == "seq-mean-token-mean":
            per_seq.append(sum(vals) / len(vals))
        elif mode == "seq-mean-token-sum-norm":
            per_seq.append(sum(vals) / (norm_length if norm_length is not None else len(row_m)))
        else:
            raise ValueError(mode)
    return sum(per_seq) / len(per_seq) if per_seq else 0.0


def ref_low_var_kl(logp: float, ref_logp: float) -> float:
    d = min(max(ref_logp - logp, -20.0), 20.0)
    return min(max(math.exp(d) - d - 1.0, -10.0), 10.0)


def _kl_part(logprobs: Matrix, ref_logprobs: Matrix | None, mask: Matrix, cfg: LossConfig, mode: str) -> float:
    if cfg.kl_coef == 0.0 or ref_logprobs is None:
        return 0.0
    kl = [[ref_low_var_kl(a, b) for a, b in zip(r1, r2, strict=True)] for r1, r2 in zip(logprobs, ref_logprobs, strict=True)]
    return cfg.kl_coef * ref_aggregate(kl, mask, mode, cfg.norm_length)


def ref_ppo_clip(logprobs: Matrix, old_logprobs: Matrix, advantages: Matrix, mask: Matrix,
                 cfg: LossConfig, ref_logprobs: Matrix | None = None) -> tuple[float, float]:
    """(loss, clip fraction) of PPO-clip with dual clip, one token at a time."""
    tok: list[list[float]] = []
    n_clip, n_tok = 0, 0
    for s in range(len(logprobs)):
        row: list[float] = []
        for t in range(len(logprobs[s])):
            a = advantages[s][t]
            r = math.exp(min(max(logprobs[s][t] - old_logprobs[s][t], -20.0), 20.0))
            unclipped = -a * r
            clipped = -a * min(max(r, 1.0 - cfg.eps_lo), 1.0 + cfg.eps_hi)
            x = max(unclipped, clipped)
            if mask[s][t] > 0:
                n_tok += 1
                n_clip += clipped > unclipped
            if a < 0 and cfg.dual_clip_c is not None:
                x = min(x, -a * cfg.dual_clip_c)
            row.append(x)
        tok.append(row)
    loss = ref_aggregate(tok, mask, cfg.agg, cfg.norm_length) + _kl_part(logprobs, ref_logprobs, mask, cfg, cfg.agg)
    return loss, (n_clip / n_tok if n_tok else 0.0)


def ref_gspo(logprobs: Matrix, old_logprobs: Matrix, advantages: Matrix, mask: Matrix,
             cfg: LossConfig, ref_logprobs: Matrix | None = None) -> float:
    """GSPO loss value: a per-sequence ratio exp(mean log r), clipped, seq-mean-token-mean."""
    per_seq: list[float] = []
    for s in range(len(logprobs)):
        idx = [t for t in range(len(logprobs[s])) if mask[s][t] > 0]
        if not idx:
            continue
        log_ratio = sum(logprobs[s][t] - old_logprobs[s][t] for t in idx) / len(idx)
        ratio = math.exp(min(log_ratio, 10.0))
        vals = []
        for t in idx:
            a = advantages[s][t]
            vals.append(max(-a * ratio, -a * min(max(ratio, 1.0 - cfg.eps_lo), 1.0 + cfg.eps_hi)))
        per_seq.append(sum(vals) / len(vals))
    loss = sum(per_seq) / len(per_seq) if per_seq else 0.0
    return loss + _kl_part(logprobs, ref_logprobs, mask, cfg, "seq-mean-token-mean")


def ref_echo(logprobs: Matrix, obs_mask: Matrix, action_mask: Matrix, attention_mask: Matrix,
             obs_body_mask: Matrix | None, cfg: EchoConfig) -> float:
    """ECHO ``L_env`` with the target and count sets built token by token."""
    per_seq: list[float] = []
    all_nll: list[float] = []
    for s in range(len(logprobs)):
        seen_action = False
        nll, n_target, n_count = 0.0, 0, 0
        for t in range(len(logprobs[s])):
            is_action = action_mask[s][t] > 0
            seen_action = seen_action or is_action
            if attention_mask[s][t] <= 0 or is_action:
                continue
            env = obs_mask[s][t] > 0
            body = env or (obs_body_mask is not None and obs_body_mask[s][t] > 0)
            if cfg.targets == "env":
                is_target, counted = env, body
            else:
                is_target = counted = body or seen_action
            n_count += counted
            if is_target and t > 0:
                nll -= logprobs[s][t]
                n_target += 1
                all_nll.append(-logprobs[s][t])
        if cfg.norm == "observation":
            per_seq.append(nll / (n_count + cfg.eps))
        elif cfg.norm == "selected":
            per_seq.append(nll / (n_target + cfg.eps))
    if cfg.norm == "token-mean":
        return sum(all_nll) / (len(all_nll) + cfg.eps)
    return sum(per_seq) / len(per_seq)
