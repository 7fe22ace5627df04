"""Policy losses: one registry, one signature.

Importing this module only registers entry points (nothing heavy is imported). Every built-in
registers here, through the same call users use::

    from agentgym import registries
    loss_fn = registries.losses.get("ppo-clip")
    out = loss_fn(logprobs, old_logprobs, advantages, action_mask, LossConfig(eps_hi=0.28))

The signature (:class:`agentgym.trainers.losses.base.PolicyLoss`)::

    loss(logprobs[S,L], old_logprobs[S,L], advantages[S,L], mask[S,L], config=None, *,
         ref_logprobs=None) -> LossResult(loss, metrics, agg)

The ECHO observation loss (:mod:`agentgym.trainers.losses.echo`) is an auxiliary term with its
own signature; ``train_step(..., echo=EchoConfig())`` adds it to any policy loss.
"""

from agentgym.registries import losses as _losses

__all__: list[str] = []  # nothing to import from here: look losses up in the registry

_losses.register(
    "ppo-clip", "agentgym.trainers.losses.ppo:ppo_clip_loss",
    description="PPO clip (eps 0.2/0.2) with dual clip c=3 for A<0, token-mean (verl 'vanilla')",
)
_losses.register(
    "dapo", "agentgym.trainers.losses.ppo:dapo_loss",
    description="PPO clip with DAPO clip-higher (eps 0.2/0.28), dual clip c=3, token-mean",
)
_losses.register(
    "dr-grpo", "agentgym.trainers.losses.ppo:dr_grpo_loss",
    description="PPO clip aggregated seq-mean-token-sum-norm (Dr.GRPO constant normaliser)",
)
_losses.register(
    "gspo", "agentgym.trainers.losses.gspo:gspo_loss",
    description="GSPO sequence ratio exp(mean log r), clip 3e-4/4e-4, seq-mean-token-mean, no dual clip",
)
