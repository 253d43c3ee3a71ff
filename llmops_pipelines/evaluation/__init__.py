"""Batch evaluation: one module per metric, a cache, a runner and the aggregation."""

from llmops_pipelines.evaluation.metrics.metric import Score

__all__ = ["Score"]
