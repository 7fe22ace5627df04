"""Advantage estimators: one registry, one signature."""
