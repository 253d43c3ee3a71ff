"""llmops-pipelines: the Generative-AI application lifecycle as Dagster assets."""

__version__ = "0.1.0"
