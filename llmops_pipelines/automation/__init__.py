"""Pure logic behind the sensors and schedule: what changed, what to run, what to alert.

No dagster import here; llmops_pipelines/defs/automation.py wires these functions.
"""
