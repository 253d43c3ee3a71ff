"""Pure fine-tune logic: the training file, its validation, and what a job would cost."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_pipelines.errors import DataError, FineTuneError
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.rag.app import render
from llmops_pipelines.rag.retrieval import Retrieved

ROLES = ("system", "user", "assistant")
MIN_EXAMPLES = 10
TokenCounter = Callable[[list[dict[str, str]]], int]


def training_examples(prompt: Prompt, questions: Sequence[str], answers: Sequence[str],
                      contexts: Sequence[list[Retrieved]]) -> list[dict[str, Any]]:
    """Chat examples rendered with the same prompt that evaluation and serving use."""
    return [{"messages": [*render(prompt, q, ctx), {"role": "assistant", "content": a}]}
            for q, a, ctx in zip(questions, answers, contexts, strict=True) if a]


def write_jsonl(examples: list[dict[str, Any]], path: Path) -> str:
    """Write the file and return its content hash (the training data's version)."""
    text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return content_hash(text)


@dataclass
class TrainingFileReport:
    """What validation found: blocking problems, and token counts of the valid examples."""

    path: str
    problems: list[str] = field(default_factory=list)  # each starts with "file:line:"
    lines: list[int] = field(default_factory=list)  # line number of each valid example
    tokens: list[int] = field(default_factory=list)  # its tokens, same order (when counted)
    over_limit: list[str] = field(default_factory=list)  # reported; the trainer truncates them

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    def raise_if_invalid(self, what: str = "training file is invalid") -> None:
        if self.problems:
            shown = self.problems[:20]
            more = f"\n... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
            raise FineTuneError(f"{what}:\n" + "\n".join(shown) + more)

    def summary(self) -> dict[str, int | float]:
        """Token statistics for asset metadata."""
        counted = self.tokens or [0]
        return {"examples": len(self.lines), "tokens_total": self.total_tokens,
                "tokens_min": min(counted), "tokens_max": max(counted),
                "tokens_mean": round(sum(counted) / len(counted), 1),
                "over_context_limit": len(self.over_limit)}


def line_problem(raw: str) -> str | None:
    """Why one JSONL line is not a usable chat example, or None."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        return "expected a JSON object with a non-empty 'messages' list"
    for index, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            found = message.get("role") if isinstance(message, dict) else message
            return f"message {index}: role must be one of {list(ROLES)}, found {found!r:.40}"
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            return f"message {index} ({message['role']}): content is empty or not a string"
    if messages[-1]["role"] != "assistant":
        return f"the last message must be from the assistant, found {messages[-1]['role']!r}"
    if len(messages) < 2:
        return "the assistant's answer needs a prompt (a system or user message) before it"
    return None


def validate_training_file(path: Path | str, *, min_examples: int = MIN_EXAMPLES,
                           count_tokens: TokenCounter | None = None,
                           max_tokens: int | None = None) -> TrainingFileReport:
    """Check every line (each problem names it), count tokens, report over-long examples."""
    report = TrainingFileReport(str(path))
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path}:{number}"
        if (problem := line_problem(raw)) is not None:
            report.problems.append(f"{where}: {problem}")
            continue
        report.lines.append(number)
        if count_tokens is None:
            continue
        tokens = count_tokens(json.loads(raw)["messages"])
        report.tokens.append(tokens)
        if max_tokens is not None and tokens > max_tokens:
            report.over_limit.append(f"{where}: {tokens} tokens exceed the context limit "
                                     f"{max_tokens}; training truncates this example")
    if len(report.lines) < min_examples:
        report.problems.append(f"{path}: {len(report.lines)} valid examples, "
                               f"at least {min_examples} are needed")
    return report


@dataclass(frozen=True)
class TrainingSpec:
    """A fine-tunable base model's training price and longest trainable example."""

    base_model: str
    usd_per_m_tokens: float
    max_example_tokens: int

    def cost(self, tokens: int, epochs: int) -> float:
        """Billed training tokens are the file's tokens once per epoch."""
        return tokens * epochs * self.usd_per_m_tokens / 1e6


def training_spec(pricing_path: Path, base_model: str) -> TrainingSpec:
    """The base model's entry under 'training:' in pricing.yaml; missing is an error, not $0."""
    try:
        data = yaml.safe_load(Path(pricing_path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read price table: {exc}", path=str(pricing_path)) from exc
    entry = (data.get("training") or {}).get(base_model)
    if entry is None:
        raise DataError(f"base model {base_model!r} has no training price; add it under "
                        "'training:'", path=str(pricing_path), field="training")
    try:
        return TrainingSpec(base_model, float(entry["per_m"]), int(entry["max_example_tokens"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"training entry {base_model!r} needs numeric 'per_m' and "
                        "'max_example_tokens'", path=str(pricing_path),
                        field=f"training.{base_model}") from exc


def check_before_spend(path: Path | str, spec: TrainingSpec, count_tokens: TokenCounter, *,
                       epochs: int, max_cost_usd: float | None,
                       log: Callable[[str], None]) -> tuple[TrainingFileReport, float]:
    """Validate with the base model's tokenizer, log the cost estimate, enforce the cap."""
    report = validate_training_file(path, count_tokens=count_tokens,
                                    max_tokens=spec.max_example_tokens)
    report.raise_if_invalid("not fine-tuning, the training file is invalid")
    for warning in report.over_limit:
        log(warning)
    usd = spec.cost(report.total_tokens, epochs)
    log(f"estimated fine-tune cost: {report.total_tokens} tokens x {epochs} epochs x "
        f"${spec.usd_per_m_tokens}/1M ({spec.base_model}) = ${usd:.4f}")
    if max_cost_usd is not None and usd > max_cost_usd:
        raise FineTuneError(f"estimated fine-tune cost ${usd:.4f} exceeds "
                            f"LLMOPS_FINETUNE_MAX_COST_USD=${max_cost_usd}; nothing was uploaded")
    return report, usd
