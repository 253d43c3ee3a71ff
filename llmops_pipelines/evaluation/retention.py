"""context_retention: does the last answer use what earlier turns established?

Locally an honest heuristic (token overlap with the conversation's `retention` facts, else with
the names earlier user turns mention); with a judge model configured, an LLM judge's 1-5 score.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from llmops_pipelines.providers.base import Message

LOCAL_FACTS = "local:token-overlap(retention facts)"
LOCAL_ENTITIES = "local:token-overlap(entities of earlier turns)"
JUDGE_SYSTEM = (
    "You grade a customer-support answer in a multi-turn conversation. Score from 1 to 5 how "
    "well the final answer uses what the earlier turns established (the product, the problem, "
    "facts already given): 1 = ignores them or contradicts them, 5 = uses them fully. "
    "Reply with 'Score: <1-5>' and one sentence of reason.")
_STOP_WORDS = ("a an and are as at be by can do does for from how i in is it its me my of on or "
               "our the this to what which with you your")
STOP = frozenset(_STOP_WORDS.split(" "))
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")
_NAME = re.compile(r"\b(?:[A-Z][a-z]+(?:\s+[A-Z0-9][A-Za-z0-9]*)+|[A-Z]+\d+[A-Za-z0-9]*)\b")


def _tokens(text: str) -> set[str]:
    return {w.lower().rstrip(".") for w in _WORD.findall(text)} - STOP


def entities(history: Sequence[Message]) -> list[str]:
    """Product names and codes the earlier turns mention (e.g. 'Fold F2', 'E07')."""
    found = [m.group(0) for turn in history for m in _NAME.finditer(turn["content"])]
    return list(dict.fromkeys(found))


def local_retention(answer: str | None, retention: Sequence[str],
                    history: Sequence[Message]) -> tuple[float, str, str]:
    """(score in [0, 1], method, reason): the mean share of each fact's tokens in the answer."""
    facts, method = (list(retention), LOCAL_FACTS) if retention else (entities(history),
                                                                       LOCAL_ENTITIES)
    if answer is None:
        return math.nan, method, "no answer to score"
    if not facts:
        return math.nan, method, "no retention facts and no named entity in earlier turns"
    said = _tokens(answer)
    shares = [len(t & said) / len(t) for f in facts if (t := _tokens(f))]
    if not shares:
        return math.nan, method, "the retention facts hold no content word"
    used = [f for f in facts if _tokens(f) and _tokens(f) <= said]
    return (sum(shares) / len(shares), method,
            f"uses {len(used)}/{len(facts)} earlier facts fully: {used or 'none'}")


def judge_messages(history: Sequence[Message], question: str, answer: str) -> list[Message]:
    transcript = "\n".join(f"{m['role']}: {m['content']}" for m in history)
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": f"Earlier turns:\n{transcript}\n\nFinal question: "
                                        f"{question}\n\nFinal answer: {answer}"}]


def judged_retention(judge: Callable[[list[Message]], str], model: str,
                     history: Sequence[Message], question: str,
                     answer: str | None) -> tuple[float, str, str]:
    """(score in [0, 1], method, reason) from the judge; an unparsable reply is NaN with why."""
    method = f"judge:{model}"
    if answer is None:
        return math.nan, method, "no answer to score"
    reply = judge(judge_messages(history, question, answer))
    found = re.search(r"score\s*[:=]?\s*([1-5])", reply, re.IGNORECASE)
    if not found:
        return math.nan, method, f"judge reply holds no 'Score: 1-5': {reply[:120]!r}"
    return (int(found.group(1)) - 1) / 4, method, reply.strip()[:300]
