"""Shared state on a database (LLMOPS_DATABASE_URL): engine, tables, migrations; no dagster."""
