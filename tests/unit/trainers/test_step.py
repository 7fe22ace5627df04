"""train_step end to end on CPU with a tiny randomly initialised Qwen2 and a real StepBatch."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import transformers
from torch import Tensor

from agentgym import registries
from agentgym.trainers.batch import StepBatch
from agentgym.trainers.losses.base import AGG_MODES, LossConfig
from agentgym.trainers.losses.echo import EchoConfig, echo_observation_loss, observation_masks
from agentgym.trainers.step import compute_token_logprobs, train_step

torch.set_num_threads(1)

VOCAB = 64
# One segment per trajectory, two steps each. P prompt, A action, F template framing,
# O environment output, W harness warning, _ padding.
LAYOUTS = [
    "PPPAAAFOOOFAAA__",
    "PPPPAAFOOOOWFAAA",
    "PPPAAAAFOOFAA___",
    "PPAAAFOOOOOFAA__",
]


def tiny_model(seed: int = 0) -> transformers.PreTrainedModel:
    torch.manual_seed(seed)
    config = transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
    )
    return transformers.Qwen2ForCausalLM(config)


def make_batch(model: torch.nn.Module | None = None, seed: int = 0, body: bool = True,
               layouts: list[str] = LAYOUTS) -> StepBatch:
    """A StepBatch over ``layouts``; old_logprobs from ``model`` (else random) on action tokens."""
    g = torch.Generator().manual_seed(seed)
    S, L = len(layouts), len(layouts[0])

    def m(chars: str) -> Tensor:
        return torch.tensor([[1.0 if c in chars else 0.0 for c in lay] for lay in layouts])

    attention = m("PAFOW").long()
    input_ids = torch.randint(1, VOCAB, (S, L), generator=g) * attention
    action = m("A")
    token_row = torch.full((S, L), -1, dtype=torch.long)
    for s, lay in enumerate(layouts):
        first_obs = lay.index("F")
        for t, c in enumerate(lay):
            if c != "_" and c != "P":
                token_row[s, t] = 2 * s + (0 if t < first_obs else 1)
    if model is not None:
        with torch.no_grad():
            old = compute_token_logprobs(model, input_ids, attention) * action
    else:
        old = -torch.rand(S, L, generator=g) * 3 * action
    return StepBatch.from_arrays(
        group_ids=[0, 0, 0, 0, 1, 1, 1, 1], traj_ids=[0, 0, 1, 1, 2, 2, 3, 3], step_rewards=[0.0] * 8,
        episode_rewards=[1, 1, 0, 0, 1, 1, 0, 0], input_ids=input_ids, attention_mask=attention,
        action_mask=action, obs_mask=m("O"), obs_body_mask=m("OW") if body else None,
        old_logprobs=old, token_row=token_row,
    )


def grads(model: torch.nn.Module) -> list[Tensor]:
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


# -- compute_token_logprobs -----------------------------------------------------------------------
def test_token_logprobs_match_per_sequence_log_softmax_with_temperature() -> None:
    model = tiny_model()
    batch = make_batch()
    with torch.no_grad():
        lp = compute_token_logprobs(model, batch.input_ids, batch.attention_mask, temperature=0.7)
        for s in range(batch.input_ids.shape[0]):
            n = int(batch.attention_mask[s].sum())
            ids = batch.input_ids[s, :n].unsqueeze(0)
            logits = model(input_ids=ids).logits[0].float() / 0.7  # unpadded, on its own
            want = torch.log_softmax(logits[:-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
            torch.testing.assert_close(lp[s, 1:n], want, atol=1e-5, rtol=1e-5)
            assert float(lp[s, 0]) == 0.0
            assert bool((lp[s, n:] == 0).all())


def test_token_logprobs_left_padding_matches_right_padding() -> None:
    model = tiny_model()
    ids = torch.randint(1, VOCAB, (1, 6))
    right = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    ones = torch.ones(1, 6, dtype=torch.long)
    zeros = torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        lp_r = compute_token_logprobs(model, right, torch.cat([ones, zeros], 1))
        lp_l = compute_token_logprobs(model, left, torch.cat([zeros, ones], 1))
    # left padding shifts the "position 0" slot: token 0 of the sequence has no context either way
    torch.testing.assert_close(lp_r[0, 1:6], lp_l[0, 4:9], atol=1e-5, rtol=1e-5)


# -- train_step -----------------------------------------------------------------------------------
def test_first_step_ratio_is_one_and_positive_advantages_raise_logprobs() -> None:
    model = tiny_model()
    batch = make_batch(model)
    adv_rows = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    adv = batch.row_to_tokens(adv_rows)
    positive = adv > 0
    assert int(positive.sum()) == 5

    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    metrics = train_step(model, opt, batch, adv, loss="ppo-clip")
    assert metrics["pg_clipfrac"] == 0.0
    assert metrics["pg_clipfrac_lower"] == 0.0
    assert metrics["ratio_mean"] == 1.0 and metrics["ratio_max"] == 1.0 and metrics["ratio_min"] == 1.0
    assert metrics["ppo_kl"] == 0.0
    assert metrics["skipped"] == 0.0 and metrics["grad_norm"] > 0
    # first-step PPO loss is -mean(A) over action tokens
    n_action = int((batch.action_mask > 0).sum())
    assert metrics["loss"] == pytest.approx(-5 / n_action, rel=1e-5)

    with torch.no_grad():
        after = compute_token_logprobs(model, batch.input_ids, batch.attention_mask)
    gain = (after - batch.old_logprobs)[positive]
    assert bool((gain > 0).all()), gain


@pytest.mark.parametrize("loss", ["ppo-clip", "dapo", "dr-grpo", "gspo"])
def test_each_registered_loss_trains(loss: str) -> None:
    model = tiny_model()
    batch = make_batch(model)
    adv = batch.row_to_tokens(torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0]))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    metrics = train_step(model, opt, batch, adv, loss=loss, micro_batch_size=2)
    assert metrics["pg_clipfrac"] == 0.0
    assert abs(metrics["ratio_mean"] - 1.0) < 1e-5  # micro-batches of 2 vs old logprobs from one pass of 4
    with torch.no_grad():
        after = compute_token_logprobs(model, batch.input_ids, batch.attention_mask)
    delta = ((after - batch.old_logprobs) * adv)[batch.action_mask > 0]
    assert float(delta.sum()) > 0  # advantage-weighted logprob went up


CASES: list[dict[str, Any]] = [
    *({"loss_config": LossConfig(agg=mode)} for mode in AGG_MODES),
    {"loss": "gspo", "loss_config": LossConfig(eps_lo=0.05, eps_hi=0.05)},
    {"loss_config": LossConfig(eps_hi=0.28), "echo": EchoConfig()},
    {"loss_config": LossConfig(agg="seq-mean-token-mean"), "echo": EchoConfig(norm="token-mean", targets="full")},
    {"loss_config": LossConfig(kl_coef=0.1), "ref": True},
]


CASE_IDS = [*AGG_MODES, "gspo", "dapo+echo", "seq-mean+echo-full-token-mean", "kl"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_micro_batches_give_the_full_batch_gradient(case: dict[str, Any]) -> None:
    base = tiny_model()
    batch = make_batch(None, seed=3)  # random old logprobs: ratios away from 1, clipping active
    adv = batch.row_to_tokens(torch.randn(8, generator=torch.Generator().manual_seed(1)))
    kwargs = {k: v for k, v in case.items() if k != "ref"}
    results = []
    for mbs in (None, 1, 3):
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        ref_model = tiny_model(seed=5) if case.get("ref") else None
        metrics = train_step(model, opt, batch, adv, micro_batch_size=mbs, max_grad_norm=None,
                             ref_model=ref_model, **kwargs)
        results.append((metrics, grads(model)))
    (m_full, g_full), *rest = results
    assert m_full["pg_clipfrac"] > 0 or case.get("loss") == "gspo"  # the clip branches are exercised
    for m, g in rest:
        for a, b in zip(g_full, g, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
        assert m["loss"] == pytest.approx(m_full["loss"], rel=1e-5, abs=1e-7)
        assert m["grad_norm"] == pytest.approx(m_full["grad_norm"], rel=1e-4)
        assert m["pg_clipfrac"] == pytest.approx(m_full["pg_clipfrac"], abs=1e-6)


# -- micro-batch trimming -------------------------------------------------------------------------
# LAYOUTS' real lengths are 14, 16, 13, 14; padded to 24, as if a longer episode elsewhere in the
# batch had set the padded length.
LONG_PADDED = [lay + "_" * (24 - len(lay)) for lay in LAYOUTS]
REAL_LENGTHS = [14, 16, 13, 14]


class ShapeRecorder(torch.nn.Module):
    """Forwards to ``inner`` and records the ``input_ids`` shape of every call."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, input_ids: Tensor, **kwargs: Any) -> Any:
        self.shapes.append(tuple(input_ids.shape))
        return self.inner(input_ids=input_ids, **kwargs)


def untrimmed_objective(model: torch.nn.Module, batch: StepBatch, adv: Tensor, *, loss: str = "ppo-clip",
                        loss_config: LossConfig | None = None, echo: EchoConfig | None = None,
                        ref_model: torch.nn.Module | None = None) -> tuple[float, list[Tensor]]:
    """The full-batch objective from one forward pass over all ``[S, L]`` columns, and its gradients."""
    model.zero_grad(set_to_none=True)
    lp = compute_token_logprobs(model, batch.input_ids, batch.attention_mask)
    ref = None
    if ref_model is not None:
        with torch.no_grad():
            ref = compute_token_logprobs(ref_model, batch.input_ids, batch.attention_mask)
    total = registries.losses.get(loss)(lp, batch.old_logprobs, adv, batch.action_mask, loss_config,
                                        ref_logprobs=ref).loss
    if echo is not None:
        target, count = observation_masks(batch.obs_mask, batch.action_mask, batch.attention_mask,
                                          batch.obs_body_mask, echo.targets)
        total = total + echo.lam * echo_observation_loss(lp, target, count, echo).loss
    total.backward()
    return float(total.detach()), grads(model)


@pytest.mark.parametrize("mbs", [None, 1, 3])
def test_each_forward_pass_is_trimmed_to_its_longest_real_sequence(mbs: int | None) -> None:
    batch = make_batch(None, seed=3, layouts=LONG_PADDED)
    assert batch.input_ids.shape == (4, 24)
    model = ShapeRecorder(tiny_model())
    ref_model = ShapeRecorder(tiny_model(seed=5))
    adv = batch.row_to_tokens(torch.randn(8, generator=torch.Generator().manual_seed(1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    metrics = train_step(model, opt, batch, adv, micro_batch_size=mbs, loss_config=LossConfig(kl_coef=0.1),
                         ref_model=ref_model)
    size = 4 if mbs is None else mbs
    chunks = [REAL_LENGTHS[lo: lo + size] for lo in range(0, 4, size)]
    want = [(len(c), max(c)) for c in chunks]
    assert model.shapes == want
    assert ref_model.shapes == want
    assert metrics["forward_tokens"] == sum(n * w for n, w in want)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_trimmed_micro_batches_give_the_untrimmed_loss_and_gradients(case: dict[str, Any]) -> None:
    base = tiny_model()
    batch = make_batch(None, seed=3, layouts=LONG_PADDED)  # random old logprobs: clipping active
    adv = batch.row_to_tokens(torch.randn(8, generator=torch.Generator().manual_seed(1)))
    ref_model = tiny_model(seed=5) if case.get("ref") else None
    kwargs = {k: v for k, v in case.items() if k != "ref"}
    want_loss, want_grads = untrimmed_objective(copy.deepcopy(base), batch, adv, ref_model=ref_model, **kwargs)
    for mbs in (None, 1, 3):
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        metrics = train_step(model, opt, batch, adv, micro_batch_size=mbs, max_grad_norm=None,
                             ref_model=ref_model, **kwargs)
        assert metrics["forward_tokens"] < 4 * 24  # trimming happened
        assert metrics["loss"] == pytest.approx(want_loss, abs=1e-6)
        for a, b in zip(want_grads, grads(model), strict=True):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


def test_echo_gradient_reaches_only_observation_targets() -> None:
    model = tiny_model()
    batch = make_batch(model)
    captured: dict[str, Tensor] = {}

    def keep_logits(_module: torch.nn.Module, _inputs: Any, output: Tensor) -> None:
        output.retain_grad()
        captured["logits"] = output

    handle = model.lm_head.register_forward_hook(keep_logits)
    try:
        lp = compute_token_logprobs(model, batch.input_ids, batch.attention_mask)
    finally:
        handle.remove()
    lp.retain_grad()
    target, count = observation_masks(batch.obs_mask, batch.action_mask, batch.attention_mask,
                                      batch.obs_body_mask, "env")
    echo_observation_loss(lp, target, count).loss.backward()
    assert lp.grad is not None
    assert torch.equal(lp.grad != 0, target)
    # logits at t-1 predict token t: only those feeding an observation target get a gradient
    logits_grad = captured["logits"].grad
    assert logits_grad is not None
    predicts_target = torch.zeros_like(target)
    predicts_target[:, :-1] = target[:, 1:]
    assert torch.equal(logits_grad.abs().sum(-1) > 0, predicts_target)
    assert not bool(target[batch.action_mask > 0].any())


def test_train_step_with_echo_only_moves_observation_tokens() -> None:
    model = tiny_model()
    batch = make_batch(model)
    zero_adv = torch.zeros(batch.input_ids.shape)
    echo = EchoConfig(lam=0.05)

    reference = copy.deepcopy(model)
    lp = compute_token_logprobs(reference, batch.input_ids, batch.attention_mask)
    target, count = observation_masks(batch.obs_mask, batch.action_mask, batch.attention_mask,
                                      batch.obs_body_mask, "env")
    (0.05 * echo_observation_loss(lp, target, count, echo).loss).backward()

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    metrics = train_step(model, opt, batch, zero_adv, echo=echo, max_grad_norm=None)
    assert metrics["pg_loss"] == 0.0
    assert metrics["echo_lambda"] == 0.05 and metrics["echo_loss"] > 0
    assert metrics["echo_tokens"] == float(target.sum())
    for p_ref, p in zip(reference.parameters(), model.parameters(), strict=True):
        assert p_ref.grad is not None
        # the policy term contributes nothing, so the step is exactly lambda * grad(L_env)
        torch.testing.assert_close(p.detach(), p_ref.detach() - p_ref.grad, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        after = compute_token_logprobs(model, batch.input_ids, batch.attention_mask)
    assert float(after[target].sum()) > float(lp.detach()[target].sum())


def test_echo_lambda_follows_the_schedule() -> None:
    model = tiny_model()
    batch = make_batch(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    echo = EchoConfig(lam=0.04, schedule="step", step_every=10, step_factor=0.5)
    m = train_step(model, opt, batch, torch.zeros(batch.input_ids.shape), echo=echo, step=25)
    assert m["echo_lambda"] == pytest.approx(0.01)


def test_kl_term_with_reference_model() -> None:
    model = tiny_model()
    batch = make_batch(model)
    adv = batch.row_to_tokens(torch.ones(8))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="ref_logprobs"):
        train_step(model, opt, batch, adv, loss_config=LossConfig(kl_coef=0.1))
    m = train_step(model, opt, batch, adv, loss_config=LossConfig(kl_coef=0.1), ref_model=copy.deepcopy(model))
    assert m["kl_loss"] == 0.0  # same weights: KL is exactly 0 on the first step


def test_non_finite_gradient_skips_the_update() -> None:
    model = tiny_model()
    batch = make_batch(model)
    before = [p.detach().clone() for p in model.parameters()]
    adv = torch.full(batch.input_ids.shape, float("nan"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    m = train_step(model, opt, batch, adv)
    assert m["skipped"] == 1.0 and not math.isfinite(m["grad_norm"])
    for a, p in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, p.detach())


def test_grad_clipping_reports_the_norm_before_clipping() -> None:
    model = tiny_model()
    batch = make_batch(model)
    adv = batch.row_to_tokens(torch.full((8,), 100.0))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    m = train_step(model, opt, batch, adv, max_grad_norm=0.5)
    clipped = torch.cat([p.grad.detach().flatten() for p in model.parameters() if p.grad is not None]).norm()
    assert m["grad_norm"] > 0.5
    assert float(clipped) == pytest.approx(0.5, rel=1e-4)


def test_shape_mismatch_is_reported() -> None:
    model = tiny_model()
    batch = make_batch(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="advantages_tokens has shape"):
        train_step(model, opt, batch, torch.zeros(8))
