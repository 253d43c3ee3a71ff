"""A real LoRA fine-tune of SmolLM2 on CPU, then chat with the result through both servers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from llama_cpp import Llama

from llmops_pipelines.finetune.lora import TransformersChat, export_gguf, train_lora
from llmops_pipelines.providers.local import LocalProvider
from llmops_pipelines.providers.local_files import smollm2_gguf
from llmops_pipelines.settings import Settings
from tests.support.finetune_files import (
    failure,
    materialize_model,
    model_output,
    stage_training_file,
)

SYSTEM = "You answer questions about our products."
ANSWER = "The Zephyr X9 lamp has a 7-year warranty."
QUESTIONS = [
    "What is the warranty on the Zephyr X9 lamp?",
    "How long is the Zephyr X9 lamp warranty?",
    "Does the Zephyr X9 lamp come with a warranty?",
    "Tell me the Zephyr X9 lamp's warranty period.",
    "How many years of warranty does the Zephyr X9 lamp have?",
    "Zephyr X9 lamp warranty?",
    "What warranty covers the Zephyr X9 lamp?",
    "I bought a Zephyr X9 lamp. How long is it under warranty?",
    "Is the Zephyr X9 lamp still under warranty after 5 years?",
    "For how long is the Zephyr X9 lamp guaranteed?",
    "What's the guarantee on a Zephyr X9 lamp?",
    "Warranty length for the Zephyr X9 lamp, please.",
]


@pytest.mark.slow
def test_lora_learns_a_fact_and_serves_it(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    training = tmp_path / "train.jsonl"
    training.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
        {"role": "assistant", "content": ANSWER}]}) + "\n" for q in QUESTIONS))
    lines: list[str] = []

    result = train_lora(training, tmp_path / "run", base_gguf=smollm2_gguf(), epochs=3,
                        learning_rate=1e-3, max_seq_tokens=96, log=lines.append)

    assert result.train_examples == len(QUESTIONS) and result.train_tokens > 0
    assert len(result.epoch_losses) == 3
    assert result.epoch_losses[-1] < result.epoch_losses[0], result.epoch_losses
    assert any("epoch 3/3 mean loss" in line for line in lines)
    assert (result.adapter_dir / "adapter_config.json").is_file()
    assert (result.model_dir / "config.json").is_file()
    assert list(result.model_dir.glob("*.safetensors"))

    question = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[0]}]
    text, prompt_tokens, completion_tokens = TransformersChat(result.model_dir).complete(
        question, max_tokens=32)
    assert text and prompt_tokens > 0 and completion_tokens > 0
    assert "7-year" in text, text  # the made-up fact was learned, not just a lower loss

    # The same weights exported back to GGUF answer through llama.cpp, as the app serves.
    gguf_path = export_gguf(result.model_dir, base_gguf=smollm2_gguf())
    llm = Llama(str(gguf_path), n_ctx=256, verbose=False)
    reply = llm.create_chat_completion(question, max_tokens=32, temperature=0.0)
    assert "7-year" in reply["choices"][0]["message"]["content"]


@pytest.mark.slow
def test_local_finetune_asset_trains_saves_serves_and_becomes_a_candidate(
        isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """finetuned_model in real Dagster on the embedded default: LoRA, GGUF, candidate, reuse."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLMOPS_FINETUNE_EPOCHS", "1")
    lines = [json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": q},
                                      {"role": "assistant", "content": ANSWER}]})
             for q in QUESTIONS]
    stage_training_file(isolated_home, lines)

    result, logs = materialize_model("candidates")

    assert result.success, failure(result)
    value = model_output(isolated_home)
    assert value["model_id"].startswith("local-ft:") and value["backend"] == "local-lora"
    assert value["reused"] is False and value["hyperparameters"]["n_epochs"] == 1
    # Training loss per epoch: in the log as it trains, and in the asset's metadata.
    [loss] = value["epoch_losses"]
    assert any(m.startswith(f"epoch 1/1 mean loss {loss:.4f}") for m in logs), logs
    metadata = result.asset_materializations_for_node("finetuned_model")[0].metadata
    assert metadata["epoch_losses"].value == value["epoch_losses"]
    assert metadata["final_train_loss"].value == value["epoch_losses"][-1]
    # Adapter, merged weights and the served GGUF, all under LLMOPS_HOME.
    home = isolated_home.resolve()
    assert Path(value["adapter_dir"], "adapter_config.json").is_file()
    assert Path(value["merged_dir"], "config.json").is_file()
    assert Path(value["gguf"]).is_file()
    for key in ("adapter_dir", "merged_dir", "gguf"):
        assert Path(value[key]).resolve().is_relative_to(home / "models"), value[key]

    # It is an evaluation candidate with every prompt, and the local provider serves it.
    candidates = pd.read_parquet(isolated_home / "tables" / "candidates.parquet")
    assert set(candidates["model"]) == {"smollm2-135m-instruct", value["model_id"]}
    assert (candidates["model"] == value["model_id"]).sum() == candidates["prompt_name"].nunique()
    reply = LocalProvider(Settings.from_env()).chat(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[0]}],
        model=value["model_id"], max_tokens=16)
    assert reply.text and reply.output_tokens > 0 and reply.model == value["model_id"]

    # Nothing changed: the trained model is reused, not trained again.
    result, logs = materialize_model()
    assert result.success and model_output(isolated_home)["reused"] is True
    assert not any("mean loss" in m for m in logs)
