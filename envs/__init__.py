"""Environment families and their task suites (installed as ``agentgym.envs``)."""
