"""Step-level trainers (installed as ``agentgym.trainers``)."""
