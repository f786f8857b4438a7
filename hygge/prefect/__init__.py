"""Prefect shells over the core: the `land` flow, a subflow per hygge flow, a task per entity."""
