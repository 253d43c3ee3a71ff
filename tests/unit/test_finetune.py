"""Training-file validation (each problem names its line), token counts and the cost estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmops_pipelines.errors import DataError, FineTuneError
from llmops_pipelines.finetune.tokens import chat_token_counter
from llmops_pipelines.finetune.training_file import (
    TrainingSpec,
    check_before_spend,
    training_spec,
    validate_training_file,
)

REPO = Path(__file__).resolve().parents[2]
PRICING = REPO / "assets" / "pricing.yaml"


def example(question: str = "How long is the warranty?", answer: str = "Two years.") -> dict:
    return {"messages": [{"role": "system", "content": "Answer from the context."},
                         {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = json.dumps(example())
BAD_LINES = {
    "not valid JSON": '{"messages": [',
    "non-empty 'messages' list": json.dumps({"prompt": "x", "completion": "y"}),
    "role must be one of": json.dumps({"messages": [{"role": "bot", "content": "hi"},
                                                    {"role": "assistant", "content": "a"}]}),
    "last message must be from the assistant": json.dumps(
        {"messages": [{"role": "user", "content": "q"}]}),
    "message 3 (assistant): content is empty": json.dumps(example(answer="  ")),
    "message 2 (user): content is empty or not a string": json.dumps(
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": None},
                      {"role": "assistant", "content": "a"}]}),
    "needs a prompt": json.dumps({"messages": [{"role": "assistant", "content": "a"}]}),
}


@pytest.mark.parametrize("expected", list(BAD_LINES))
def test_each_problem_names_its_line(tmp_path: Path, expected: str) -> None:
    path = write(tmp_path / "train.jsonl", [GOOD, GOOD, BAD_LINES[expected], GOOD])
    report = validate_training_file(path, min_examples=0)
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"{path}:3: ")
    assert expected in report.problems[0]
    assert report.lines == [1, 2, 4]


def test_every_bad_line_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = write(tmp_path / "train.jsonl", [GOOD, *BAD_LINES.values()])
    report = validate_training_file(path, min_examples=0)
    assert [p.split(": ", 1)[0] for p in report.problems] == [
        f"{path}:{n}" for n in range(2, 2 + len(BAD_LINES))]
    with pytest.raises(FineTuneError, match=r"train\.jsonl:2: not valid JSON"):
        report.raise_if_invalid()


def test_minimum_example_count(tmp_path: Path) -> None:
    path = write(tmp_path / "train.jsonl", [GOOD] * 9)
    assert validate_training_file(path).problems == [
        f"{path}: 9 valid examples, at least 10 are needed"]
    assert validate_training_file(write(path, [GOOD] * 10)).problems == []


def test_local_tokens_are_counted_with_the_smollm2_tokenizer_and_chat_template() -> None:
    count = chat_token_counter("local", "smollm2-135m-instruct")
    short, long = example(), example(answer="Two years. " * 50)
    # ChatML framing: <|im_start|>, role, newline, <|im_end|>, newline per message.
    assert count(short["messages"]) > 3 * 5
    assert count(long["messages"]) - count(short["messages"]) >= 49 * 3
    # Exactly the ChatML text the trainer sees: <|im_start|> role \n content <|im_end|> \n per
    # message, special tokens as one token each, "assistant" as two ("ass", "istant").
    tiny = [{"role": "system", "content": "s"}, {"role": "user", "content": "x"},
            {"role": "assistant", "content": "y"}]
    assert count(tiny) == 6 + 6 + 7
    # Without a system message the GGUF's template injects SmolLM's default one: counted too.
    assert count(tiny[1:]) > count(tiny)


def test_openai_tokens_use_the_models_own_vocabulary() -> None:
    count = chat_token_counter("openai", "gpt-4o-mini-2024-07-18")
    messages = [{"role": "user", "content": "Hello world"},
                {"role": "assistant", "content": "Hello world"}]
    # o200k_base: "Hello world" is 2 tokens; 3 per message and 3 per example frame them.
    assert count(messages) == 3 + 2 * (3 + 2)
    with pytest.raises(FineTuneError, match="no offline tokenizer"):
        chat_token_counter("openai", "llama-3-8b")


def test_examples_over_the_context_limit_are_reported_by_line(tmp_path: Path) -> None:
    path = write(tmp_path / "train.jsonl",
                 [GOOD, json.dumps(example(answer="word " * 300)), GOOD])
    count = chat_token_counter("local", "smollm2-135m-instruct")
    report = validate_training_file(path, min_examples=0, count_tokens=count, max_tokens=200)
    assert report.problems == []
    assert len(report.tokens) == 3 and report.tokens[1] > 300 > report.tokens[0]
    assert len(report.over_limit) == 1
    assert report.over_limit[0].startswith(f"{path}:2: {report.tokens[1]} tokens exceed")
    assert report.summary()["over_context_limit"] == 1
    assert report.summary()["tokens_total"] == sum(report.tokens)


def test_cost_estimate_is_tokens_times_epochs_times_the_training_price(tmp_path: Path) -> None:
    prices = yaml.safe_load(PRICING.read_text())["training"]["gpt-4o-mini-2024-07-18"]
    spec = training_spec(PRICING, "gpt-4o-mini-2024-07-18")
    assert spec == TrainingSpec("gpt-4o-mini-2024-07-18", prices["per_m"],
                                prices["max_example_tokens"])
    path = write(tmp_path / "train.jsonl", [GOOD] * 12)
    count = chat_token_counter("openai", spec.base_model)
    lines: list[str] = []
    report, usd = check_before_spend(path, spec, count, epochs=3, max_cost_usd=None,
                                     log=lines.append)
    tokens = 12 * count(example()["messages"])
    assert report.total_tokens == tokens
    assert usd == pytest.approx(tokens * 3 * prices["per_m"] / 1e6)
    assert any(f"{tokens} tokens x 3 epochs" in line and f"${usd:.4f}" in line for line in lines)


def test_a_cost_cap_refuses_before_anything_is_spent(tmp_path: Path) -> None:
    spec = TrainingSpec("gpt-4o-mini-2024-07-18", 3.0, 65536)
    path = write(tmp_path / "train.jsonl", [GOOD] * 12)
    with pytest.raises(FineTuneError, match="exceeds LLMOPS_FINETUNE_MAX_COST_USD"):
        check_before_spend(path, spec, chat_token_counter("openai", spec.base_model), epochs=2,
                           max_cost_usd=1e-6, log=lambda _: None)


def test_an_unpriced_base_model_is_an_error_not_zero(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pricing\.yaml.*'gpt-9' has no training price"):
        training_spec(PRICING, "gpt-9")
