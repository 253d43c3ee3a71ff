"""A real LoRA fine-tune of SmolLM2 on CPU, then chat with the result through both servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_cpp import Llama

from llmops_pipelines.finetune_local import TransformersChat, export_gguf, train_lora
from llmops_pipelines.providers.local_files import smollm2_gguf

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
