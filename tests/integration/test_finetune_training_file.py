"""The training file built by Dagster from the train split, with the evaluated prompt."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from llmops_pipelines.definitions import defs, resources
from llmops_pipelines.finetune.tokens import chat_token_counter
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.rag.app import render, retrieve

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = dg.AssetSelection.groups("curation", "rag")


def test_training_file_renders_the_evaluated_prompt_over_the_train_split(
        openai_env, isolated_home: Path) -> None:
    result = dg.materialize(
        defs.assets, selection=UPSTREAM | dg.AssetSelection.assets("finetune_training_file"),
        resources=defs.resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success

    qa = pd.read_parquet(isolated_home / "tables" / "curated_qa.parquet")
    train = qa[(qa["split"] == "train") & qa["ground_truth"].notna()].sort_values("qa_id")
    value = json.loads((isolated_home / "tables" / "finetune_training_file.json").read_text())
    lines = Path(value["path"]).read_text().splitlines()
    assert len(lines) == len(train) == value["examples"] > 0
    # No eval-split answer leaks into training.
    answers = [json.loads(line)["messages"][-1]["content"] for line in lines]
    assert answers == train["ground_truth"].tolist()
    assert not set(answers) & set(qa.loc[qa["split"] == "eval", "ground_truth"])

    # The prompt part of each example is exactly what evaluation sends for that question.
    prompt = next(p for p in load_prompts(REPO / "assets" / "prompts")
                  if p.name == "grounded_concise")
    assert value["prompt_version"] == prompt.version
    llmops = resources()["llmops"]
    questions = train["question"].tolist()[:3]
    contexts = retrieve(llmops.embedder, llmops.index(), questions, llmops.settings.top_k,
                        mode=llmops.settings.retrieval)
    for line, question, found in zip(lines, questions, contexts, strict=False):
        messages = json.loads(line)["messages"]
        assert found and found[0].text in messages[-2]["content"] + messages[0]["content"]
        assert messages[:-1] == render(prompt, question, found)

    # Token counts with the base model's tokenizer, reported in metadata.
    count = chat_token_counter("openai", value["base_model"])
    tokens = [count(json.loads(line)["messages"]) for line in lines]
    assert value["tokens_total"] == sum(tokens) and value["tokens_max"] == max(tokens)
    metadata = result.asset_materializations_for_node("finetune_training_file")[0].metadata
    assert metadata["tokens_total"].value == sum(tokens)
    assert metadata["over_context_limit"].value == 0
