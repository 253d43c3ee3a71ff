"""Training files staged as the finetune_training_file asset leaves them, for finetuned_model."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from llmops_pipelines.definitions import defs
from llmops_pipelines.hashing import content_hash


def chat_line(n: int, answer: str | None = None) -> str:
    """One chat-format training example; `answer` overrides the default reply."""
    return json.dumps({"messages": [
        {"role": "system", "content": "Answer from the context."},
        {"role": "user", "content": f"Question {n}: how long is the warranty?"},
        {"role": "assistant", "content": f"Two years (case {n})." if answer is None else answer}]})


def stage_training_file(home: Path, lines: list[str]) -> Path:
    """Write the JSONL and the upstream output, so finetuned_model materializes on its own."""
    path = home / "finetune" / "train.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    tables = home / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    (tables / "finetune_training_file.json").write_text(
        json.dumps({"path": str(path), "sha": content_hash(text)}))
    return path


def materialize_model(*also: str) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    """finetuned_model (and `also`) in real Dagster; the run's log messages with it."""
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(defs.assets, selection=["finetuned_model", *also], resources=defs.resources,
                            instance=instance, raise_on_error=False)
    logs = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
    return result, logs


def failure(result: dg.ExecuteInProcessResult) -> str:
    """Every error message of the failed steps, causes included."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def model_output(home: Path) -> dict | None:
    """What finetuned_model stored, or None when it produced nothing."""
    path = home / "tables" / "finetuned_model.json"
    return json.loads(path.read_text()) if path.exists() else None
