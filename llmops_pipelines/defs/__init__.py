"""Dagster wiring only: assets call one pure function each and attach metadata."""
