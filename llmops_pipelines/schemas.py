"""Declared pyarrow schemas for every table that crosses a stage boundary."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from llmops_pipelines.errors import DataError

STR, F64, I64, BOOL = pa.string(), pa.float64(), pa.int64(), pa.bool_()

CURATED_DOCUMENTS = pa.schema([
    ("doc_id", STR), ("title", STR), ("text", STR), ("source_path", STR),
    ("split", STR), ("n_chars", I64), ("content_hash", STR),
    # line: where a CSV row / JSON object starts (0 = the whole file); format: markdown, text,
    # csv, json, jsonl; tags: comma-separated; flags: rules the row hit but was kept for
    # (csv_formula, prompt_injection), comma-separated.
    ("line", I64), ("format", STR), ("tags", STR), ("flags", STR),
])

CURATED_QA = pa.schema([
    ("qa_id", STR), ("question", STR), ("ground_truth", STR), ("doc_id", STR),
    ("split", STR), ("source_path", STR), ("line", I64), ("origin", STR),
    # origin: file | faq | synthetic; split: train | eval | test | unlabeled (no ground truth);
    # tags: comma-separated; meta: the row's other fields as JSON (e.g. customerId).
    ("tags", STR), ("meta", STR), ("flags", STR),  # flags: as in curated_documents
])

CURATION_REJECTS = pa.schema([
    ("source_path", STR), ("line", I64), ("rule", STR), ("reason", STR), ("raw", STR),
])

RAG_CHUNKS = pa.schema([
    ("chunk_id", STR), ("doc_id", STR), ("title", STR), ("heading", STR),
    ("position", I64), ("text", STR),
    ("doc_version", STR),  # hash of the source document's text the chunk was cut from
])

CANDIDATES = pa.schema([
    ("candidate_id", STR), ("prompt_name", STR), ("prompt_version", STR), ("model", STR),
    ("params", STR),
    ("endpoint", STR),  # the models.yaml endpoint serving the model (local, openai, ...)
])

EVALUATION_ROWS = pa.schema([
    ("row_id", STR), ("candidate_id", STR), ("qa_id", STR), ("prompt_name", STR),
    ("prompt_version", STR), ("model", STR), ("question", STR), ("ground_truth", STR),
    ("answer", STR), ("context_ids", pa.list_(STR)), ("context_doc_ids", pa.list_(STR)),
    ("source_doc_retrieved", BOOL),
    ("quality", F64), ("token_f1", F64), ("answer_similarity", F64), ("quality_reason", STR),
    # answer_relevance: embedding cosine of answer and question; *_judge: the LLM judge's mean
    # (0..1) over LLMOPS_JUDGE_REPEATS runs, *_spread: max - min over those runs.
    ("answer_relevance", F64), ("quality_judge", F64), ("quality_judge_spread", F64),
    ("groundedness", F64), ("groundedness_reason", STR),
    ("groundedness_source", STR),  # the local heuristic or judge:<model>: which gave the number
    ("groundedness_judge", F64), ("groundedness_judge_spread", F64),
    ("harm", F64), ("harm_categories", STR), ("harm_source", STR),
    ("input_tokens", I64), ("output_tokens", I64), ("cost_usd", F64), ("cost_reason", STR),
    ("judge_cost_usd", F64),
    ("latency_ms", F64), ("ms_per_output_token", F64), ("latency_reason", STR),
    ("ttft_ms", F64),  # time to first token, when streamed (LLMOPS_STREAM=on)
    ("error", STR), ("cached", BOOL),
    ("attempts", I64),  # calls made for the answer this run (retries included; 0 when cached)
    ("data_version", STR), ("index_version", STR), ("evaluator_version", STR),
    ("endpoint", STR),  # the endpoint that answered (models.yaml); cost_usd uses its price
    # JSON {stage: ms} from the row's llmops.eval_row trace (retrieve/render/chat/judge)
    ("stages_ms", STR),
])

EVALUATION_SUMMARY = pa.schema([
    ("candidate_id", STR), ("prompt_name", STR), ("prompt_version", STR), ("model", STR),
    ("rows", I64), ("coverage", F64),
    ("quality", F64), ("quality_ci_low", F64), ("quality_ci_high", F64),
    ("groundedness", F64), ("groundedness_ci_low", F64), ("groundedness_ci_high", F64),
    ("harm_rate", F64), ("cost_usd", F64), ("cost_per_1k_answers_usd", F64),
    ("latency_ms_per_token", F64), ("latency_p50_ms_per_token", F64),
    ("latency_p95_ms_per_token", F64), ("errors", I64),
    ("harm_rate_ci_low", F64), ("harm_rate_ci_high", F64),
    ("answer_relevance", F64), ("answer_relevance_ci_low", F64), ("answer_relevance_ci_high", F64),
    ("cost_per_1k_answers_ci_low", F64), ("cost_per_1k_answers_ci_high", F64),
    ("latency_ms_per_token_ci_low", F64), ("latency_ms_per_token_ci_high", F64),
    ("ttft_p50_ms", F64), ("ttft_p95_ms", F64),
    ("quality_judge_spread", F64), ("groundedness_judge_spread", F64),
    ("groundedness_source", STR), ("judge_cost_usd", F64),
    # Eval questions that are prompt-injection attempts, and the share of answers that obeyed
    # (metrics.harm.injection_followed, a labelled heuristic; NaN when there are none).
    ("injection_questions", I64), ("injection_susceptibility", F64),
    ("endpoint", STR),
])


PROMPT_PLAYGROUND = pa.schema([
    ("qa_id", STR), ("question", STR), ("ground_truth", STR), ("prompt_name", STR),
    ("prompt_version", STR), ("model", STR), ("answer", STR), ("context_doc_ids", STR),
    ("output_tokens", I64), ("latency_ms", F64), ("cached", BOOL), ("error", STR),
])


def to_table(frame: pd.DataFrame, schema: pa.Schema, *, name: str) -> pa.Table:
    """Cast a frame to its declared schema; a missing column is an error naming the table."""
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing:
        raise DataError(f"table {name!r} lacks declared columns {missing}")
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def conform(frame: pd.DataFrame, schema: pa.Schema, *, name: str) -> pd.DataFrame:
    """The frame reduced to its declared columns and types, as pandas."""
    return to_table(frame, schema, name=name).to_pandas()
