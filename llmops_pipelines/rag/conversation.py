"""A conversation in the RAG app: the question, its history, the standalone query and trimming.

Serving, evaluation and fine-tune data call these, so a multi-turn answer is built the same way
wherever it is scored or served:

    turn = parse_messages(request["messages"])             # history + the last user question
    query = standalone_query(turn, mode, rewrite)           # what retrieval searches for
    history, dropped = trim_history(turn.history, budget)   # oldest turns first
    messages = render_turn(prompt, turn.question, history, contexts)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmops_pipelines.prompts import Message, Prompt
from llmops_pipelines.rag.chunking import approx_tokens
from llmops_pipelines.rag.retrieval import Retrieved

QUERY_MODES = ("concat", "rewrite")
HISTORY_INPUT = "chat_history"  # Prompty's name for the earlier turns
ROLES = ("user", "assistant")
# "concat" searches with the question and the user turns before it, newest first, up to this
# many: enough for "how much does it weigh?" to carry the tent named two turns back.
CONCAT_USER_TURNS = 2
REWRITE_MAX_TOKENS = 48
REWRITE_SYSTEM = (
    "Rewrite the customer's last question so it can be understood without the conversation: "
    "name the product or topic it refers to. Reply with the rewritten question only.")


class ConversationError(ValueError):
    """A `messages` list that is not a conversation (the message says which entry and why)."""


@dataclass(frozen=True)
class Turn:
    """The last user question and the user/assistant messages before it."""

    question: str
    history: tuple[Message, ...] = ()
    ignored_system: int = 0  # a client's system messages: our prompt is the system prompt

    @property
    def user_turns(self) -> list[str]:
        return [m["content"] for m in self.history if m["role"] == "user"]


def _text(content: Any) -> str | None:
    if isinstance(content, list):  # typed parts: keep the text ones
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content.strip() if isinstance(content, str) else None


def parse_messages(messages: Any) -> Turn:
    """The conversation a chat request carries; the last message must be the user's question."""
    if not isinstance(messages, list) or not messages:
        raise ConversationError("'messages' must be a non-empty list")
    history: list[Message] = []
    ignored = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ConversationError(f"messages[{i}] is not an object")
        role, text = message.get("role"), _text(message.get("content"))
        if role in ("system", "developer"):
            ignored += 1
            continue
        if role not in ROLES:
            raise ConversationError(f"messages[{i}].role={role!r}: expected one of "
                                    f"{('system', 'developer', *ROLES)}")
        if text is None:
            raise ConversationError(f"messages[{i}].content must be text")
        if text:
            history.append({"role": role, "content": text})
    if not history or history[-1]["role"] != "user":
        raise ConversationError("the last message must be a non-empty user message "
                                "(the question to answer)")
    return Turn(history[-1]["content"], tuple(history[:-1]), ignored)


def concat_query(turn: Turn, user_turns: int = CONCAT_USER_TURNS) -> str:
    """The question after the last few user turns: what retrieval searches for by default."""
    earlier = turn.user_turns[-user_turns:] if user_turns else []
    return "\n".join([*earlier, turn.question])


def rewrite_messages(turn: Turn) -> list[Message]:
    """The candidate's own model is asked for a standalone question (query rewrite)."""
    transcript = "\n".join(f"{m['role']}: {m['content']}" for m in turn.history)
    return [{"role": "system", "content": REWRITE_SYSTEM},
            {"role": "user", "content": f"Conversation:\n{transcript}\n\n"
                                        f"Last question: {turn.question}\n\nStandalone question:"}]


def standalone_query(turn: Turn, mode: str, rewrite: Callable[[list[Message]], str] | None = None
                     ) -> str:
    """What retrieval searches for. A first turn is its own query (no model call)."""
    if mode not in QUERY_MODES:
        raise ValueError(f"conversation query mode {mode!r}: expected one of {QUERY_MODES}")
    if not turn.history:
        return turn.question
    if mode == "rewrite" and rewrite is not None:
        rewritten = rewrite(rewrite_messages(turn)).strip().splitlines()
        # A model that answers instead of rewriting still says something: keep its first line,
        # with the question itself so a bad rewrite cannot lose what was asked.
        if rewritten and rewritten[0].strip():
            return f"{rewritten[0].strip()}\n{turn.question}"
    return concat_query(turn)


def trim_history(history: Sequence[Message], budget_tokens: int,
                 count: Callable[[str], int] = approx_tokens) -> tuple[list[Message], int]:
    """The newest messages that fit in `budget_tokens`, and how many older ones were dropped."""
    kept: list[Message] = []
    used = 0
    for message in reversed(history):
        cost = count(message["content"]) + 4  # the role markers a chat template adds
        if used + cost > budget_tokens:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    # Never start on an assistant message: the model would read an answer to nothing.
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept, len(history) - len(kept)


def history_budget(context_tokens: int, max_tokens: int, prompt_messages: Sequence[Message],
                   count: Callable[[str], int] = approx_tokens) -> int:
    """Tokens left for history once the prompt (with its context) and the answer are counted."""
    prompt = sum(count(m["content"]) + 4 for m in prompt_messages)
    return max(0, context_tokens - max_tokens - prompt)


def render_turn(prompt: Prompt, question: str, history: Sequence[Message],
                contexts: Sequence[Retrieved]) -> list[Message]:
    """The prompt's messages for this turn.

    A prompt declaring `chat_history` places the turns itself (Prompty's convention); any other
    prompt gets them as messages right before its last user message.
    """
    context = [{"doc_id": c.doc_id, "text": c.text} for c in contexts]
    if HISTORY_INPUT in prompt.declared:
        return prompt.render(question=question, context=context, chat_history=list(history))
    messages = prompt.render(question=question, context=context)
    if not history:
        return messages
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"),
                    default=len(messages))
    return [*messages[:last_user], *history, *messages[last_user:]]
