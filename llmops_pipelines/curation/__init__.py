"""Pure curation: a dataset folder to curated documents, Q&A pairs with leak-free splits, and rejects.

Stages, one module each: layout (which files, datasets.yaml) -> readers/tabular (files to drafts)
-> documents (normalise, filters, PII, duplicates, ids) -> faq (mined pairs) -> questions (Q&A
rules) -> splits -> pipeline (frames, data version). checks holds the invariants the Dagster
asset checks assert. Nothing here imports dagster.
"""

from llmops_pipelines.curation.layout import DatasetConfig, FileRule, Quality, load_config
from llmops_pipelines.curation.normalise import normalise
from llmops_pipelines.curation.pipeline import Curated, Synthesizer, curate, data_version
from llmops_pipelines.curation.splits import SPLIT_NAMES, UNLABELED, assign_split

__all__ = ["SPLIT_NAMES", "UNLABELED", "Curated", "DatasetConfig", "FileRule", "Quality",
           "Synthesizer", "assign_split", "curate", "data_version", "load_config", "normalise"]
