"""Multi-turn evaluation: replay each conversation as serving would and score its last answer.

Built from the serving functions (parse_messages, standalone_query, history_budget,
trim_history, render_turn), then run through the same runner as evaluation_rows (cache keys,
five metrics, cost, latency, judges), plus context_retention per conversation x candidate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llmops_pipelines.evaluation import runner
from llmops_pipelines.evaluation.cache import chat_text
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.evaluation.plan import candidate_params
from llmops_pipelines.evaluation.retention import judged_retention, local_retention
from llmops_pipelines.prompts import Message
from llmops_pipelines.rag.conversation import (
    REWRITE_MAX_TOKENS,
    Turn,
    history_budget,
    parse_messages,
    render_turn,
    standalone_query,
    trim_history,
)
from llmops_pipelines.rag.retrieval import Retrieved

Retriever = Callable[[list[str], Candidate], list[list[Retrieved]]]
COLUMNS = ["conversation_id", "candidate_id", "split", "turns", "question", "answer", "query",
           "history_messages", "history_dropped", "context_doc_ids", "expected_doc_retrieved",
           "quality", "harm", "groundedness", "cost_usd", "latency_ms_per_token",
           "context_retention", "retention_method", "retention_reason", "error", "cached"]


@dataclass(frozen=True)
class ConversationCandidate(Candidate):
    """A candidate answering a conversation's last turn: history trimmed and placed as served."""

    context_tokens: int = 2048
    max_tokens: int = 160

    def trimmed(self, question: str, history: Sequence[Message],
                contexts: Sequence[Retrieved]) -> tuple[list[Message], int]:
        """The history that fits once prompt, context and answer are counted (as serving)."""
        bare = render_turn(self.prompt, question, (), contexts)
        return trim_history(list(history), history_budget(self.context_tokens, self.max_tokens,
                                                          bare))

    def render(self, row: Any, contexts: Sequence[Retrieved]) -> list[Message]:
        history, _ = self.trimmed(row.question, row.history, contexts)
        return render_turn(self.prompt, row.question, history, contexts)


def turns(conversations: pd.DataFrame) -> list[Turn]:
    """Each conversation's last question and history, parsed as the served app parses requests."""
    return [parse_messages(json.loads(t)) for t in conversations["turns"]]


def queries(parsed: Sequence[Turn], mode: str,
            rewrite: Callable[[list[Message]], str] | None = None) -> list[str]:
    """What retrieval searches for, per conversation (standalone_query, as serving)."""
    return [standalone_query(t, mode, rewrite) for t in parsed]


def as_questions(conversations: pd.DataFrame, parsed: Sequence[Turn]) -> pd.DataFrame:
    """The runner's question table: the conversation's last question, expected answer, history."""
    return pd.DataFrame({
        "qa_id": conversations["conversation_id"].tolist(),
        "question": [t.question for t in parsed],
        "ground_truth": conversations["expected"].tolist(),
        "doc_id": conversations["expected_doc_id"].tolist(),
        "history": [list(t.history) for t in parsed],
    })


def evaluate(conversations: pd.DataFrame, candidates: Sequence[Candidate], retrieve: Retriever,
             ctx: runner.RunContext, defaults: dict[str, Any], *, mode: str,
             context_tokens: int, judge_model: str | None = None) -> pd.DataFrame:
    """One row per conversation x candidate: the last answer's five metrics and its retention."""
    if conversations.empty or not candidates:
        return pd.DataFrame(columns=COLUMNS)
    parsed = turns(conversations)
    qa = as_questions(conversations, parsed)
    wrapped: list[Candidate] = []
    searched: dict[str, list[str]] = {}
    dropped: dict[str, list[int]] = {}
    contexts: dict[str, list[list[Retrieved]]] = {}
    for candidate in candidates:
        params = candidate_params(candidate, defaults)
        wrapped_c = ConversationCandidate(
            candidate.prompt, candidate.model, candidate.params, candidate.endpoint,
            candidate.qualified, candidate.inputs, context_tokens=context_tokens,
            max_tokens=int(params.get("max_tokens", defaults.get("max_tokens", 160))))
        route = ctx.routes.get(candidate.endpoint)
        provider = route.provider if route else ctx.provider
        # The rewrite is the candidate's own model, as serving asks the champion's (cached).
        rewrite = chat_text(provider, ctx.cache, candidate.model,
                            {"temperature": 0.0, "max_tokens": REWRITE_MAX_TOKENS},
                            "conversation-rewrite")
        qs = queries(parsed, mode, rewrite)
        searched[wrapped_c.candidate_id] = qs
        contexts[wrapped_c.candidate_id] = retrieve(qs, candidate)
        wrapped.append(wrapped_c)
        dropped[wrapped_c.candidate_id] = [
            wrapped_c.trimmed(t.question, t.history, found)[1]
            for t, found in zip(parsed, contexts[wrapped_c.candidate_id], strict=True)]
    rows = runner.evaluate(wrapped, qa, lambda c: contexts[c.candidate_id], ctx, defaults)
    judge_route = ctx.routes.get(ctx.judge_endpoint)
    judge = (chat_text(judge_route.provider if judge_route else ctx.provider, ctx.cache,
                       judge_model, {"temperature": 0.0, "max_tokens": 80},
                       "context-retention-judge") if judge_model else None)
    return _rows(conversations, parsed, rows, searched, dropped, judge, judge_model)


def _rows(conversations: pd.DataFrame, parsed: Sequence[Turn], rows: pd.DataFrame,
          searched: dict[str, list[str]], dropped: dict[str, list[int]],
          judge: Callable[[list[Message]], str] | None,
          judge_model: str | None) -> pd.DataFrame:
    position = {cid: i for i, cid in enumerate(conversations["conversation_id"])}
    out = []
    for row in rows.itertuples(index=False):
        i = position[row.qa_id]
        conv, turn = conversations.iloc[i], parsed[i]
        answer = row.answer if isinstance(row.answer, str) else None
        if judge is not None and judge_model:
            score, method, reason = judged_retention(judge, judge_model, turn.history,
                                                     turn.question, answer)
        else:
            score, method, reason = local_retention(answer, list(conv["retention"]), turn.history)
        out.append({
            "conversation_id": row.qa_id, "candidate_id": row.candidate_id,
            "split": conv["split"], "turns": len(json.loads(conv["turns"])),
            "question": turn.question, "answer": answer, "query": searched[row.candidate_id][i],
            "history_messages": len(turn.history), "history_dropped": dropped[row.candidate_id][i],
            "context_doc_ids": list(row.context_doc_ids),
            "expected_doc_retrieved": bool(row.source_doc_retrieved),
            "quality": row.quality, "harm": row.harm, "groundedness": row.groundedness,
            "cost_usd": row.cost_usd, "latency_ms_per_token": row.ms_per_output_token,
            "context_retention": score, "retention_method": method, "retention_reason": reason,
            "error": row.error, "cached": bool(row.cached)})
    return pd.DataFrame(out, columns=COLUMNS)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per candidate: conversations, mean metrics and retrieval hit rate (NaN-aware means)."""
    metrics = ["quality", "harm", "groundedness", "cost_usd", "latency_ms_per_token",
               "context_retention", "expected_doc_retrieved"]
    if rows.empty:
        return pd.DataFrame(columns=["candidate_id", "conversations", *metrics])
    frame = rows.assign(expected_doc_retrieved=rows["expected_doc_retrieved"].astype(float))
    out = frame.groupby("candidate_id")[metrics].mean().reset_index()
    out.insert(1, "conversations", frame.groupby("candidate_id").size().values)
    return out
