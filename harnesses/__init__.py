"""Built-in harness adapters (installed as ``agentgym.harnesses``)."""
