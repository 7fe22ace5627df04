"""Policy losses: one registry."""
