"""The prompt playground (ideation): answer a few eval questions with every prompt variant, side by side.

Calls go through the same cache, under the same keys, as evaluation (runner.build_tasks): a
question the playground answered is not paid for again by the full evaluation, and vice versa.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from llmops_pipelines.evaluation.cache import CallCache, cached_chat
from llmops_pipelines.providers.base import Provider
from llmops_pipelines.schemas import PROMPT_PLAYGROUND, conform


def run_playground(tasks: list[Any], provider: Provider, cache: CallCache) -> pd.DataFrame:
    """One row per question x prompt variant (tasks from evaluation.runner.build_tasks)."""
    rows = []
    for task in tasks:
        result, cached, error = cached_chat(provider, cache, task.key, task.messages,
                                            task.candidate.model, task.params,
                                            legacy_key=task.legacy_key)
        rows.append({
            "qa_id": task.qa.qa_id, "question": task.qa.question,
            "ground_truth": task.qa.ground_truth, "prompt_name": task.candidate.prompt.name,
            "prompt_version": task.candidate.prompt.version, "model": task.candidate.model,
            "answer": result.text if result else None,
            "context_doc_ids": ",".join(c.doc_id for c in task.contexts),
            "output_tokens": result.output_tokens if result else 0,
            "latency_ms": result.latency_ms if result else float("nan"),
            "cached": cached, "error": error,
        })
    frame = pd.DataFrame(rows, columns=PROMPT_PLAYGROUND.names)
    return conform(frame, PROMPT_PLAYGROUND, name="prompt_playground")


def side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """Question, ground truth, then one answer column per prompt variant: what the UI shows."""
    if frame.empty:
        return pd.DataFrame(columns=["question", "ground_truth"])
    answers = frame.assign(answer=frame["answer"].fillna("ERROR: " + frame["error"].fillna("")))
    wide = answers.pivot_table(index=["qa_id", "question"], columns="prompt_name", values="answer",
                               aggfunc="first").reset_index()
    truths = frame.drop_duplicates("qa_id").set_index("qa_id")["ground_truth"]
    wide.insert(2, "ground_truth", wide["qa_id"].map(truths))
    wide.columns.name = None
    return wide.drop(columns="qa_id")
