"""Metric validity: plant labelled errors in supported answers, measure how often metrics see them.

Pure (no dagster, no model calls of its own): `corpus` turns documents and Q&A into supported
sources, `planting` derives labelled variants from them, `measure` scores the variants with the
metrics it is given and reports detection and false-alarm rates, `record` keeps the last run.
"""
