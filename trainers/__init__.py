"""Step-level trainers (installed as ``agentgym.trainers``)."""

__all__: list[str] = []  # the API lives in the submodules (batch, collate, step, advantages, losses ...)
