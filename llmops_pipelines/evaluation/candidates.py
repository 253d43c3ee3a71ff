"""Candidates: every prompt version x model (on an endpoint) x params, each with a content id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from llmops_pipelines.errors import PromptError
from llmops_pipelines.hashing import content_hash, stable_json
from llmops_pipelines.prompts import Message, Prompt
from llmops_pipelines.rag.app import render
from llmops_pipelines.rag.retrieval import Retrieved
from llmops_pipelines.schemas import CANDIDATES, conform

# Grid parameters that choose the retrieval, not the chat call.
RETRIEVAL_PARAMS = ("top_k", "retrieval")


class Inputs(Protocol):
    """An input mapping (experiments.yaml): how a third-party prompt's inputs are bound."""

    @property
    def spec_hash(self) -> str: ...


@dataclass(frozen=True)
class BoundInputs:
    """A mapping bound to this run's curated tables: values for one Q&A row and its chunks."""

    spec_hash: str
    binder: Any  # input_mapping.Binder

    def values(self, row: Any, contexts: Sequence[Retrieved]) -> dict[str, Any]:
        return dict(self.binder.values(row, contexts))


@dataclass(frozen=True)
class Candidate:
    prompt: Prompt
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: str = ""  # "" = the run's own endpoint (LLMOPS_PROVIDER)
    qualified: bool = False  # the id names the endpoint: two endpoints serve this model name
    inputs: Inputs | None = None  # None: our prompts' own inputs (question, context)

    @property
    def label(self) -> str:
        """The model as people read it: endpoint/model where the name alone is ambiguous."""
        return f"{self.endpoint}/{self.model}" if self.qualified else self.model

    @property
    def candidate_id(self) -> str:
        # Readable prefix for people, content hash for identity. Unqualified candidates with
        # our own inputs hash exactly as before: their ids and cache keys do not move.
        parts: list[Any] = [self.prompt.version, self.label, self.params]
        if self.inputs is not None:
            parts.append(self.inputs.spec_hash)
        return f"{self.prompt.name}@{self.label}#{content_hash(*parts, length=8)}"

    @property
    def chat_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in RETRIEVAL_PARAMS}

    @property
    def retrieval(self) -> tuple[int | None, str | None]:
        """(top_k, mode) this candidate retrieves with; None where the run's setting applies."""
        return self.params.get("top_k"), self.params.get("retrieval")

    def render(self, row: Any, contexts: Sequence[Retrieved]) -> list[Message]:
        """The messages for one curated Q&A row and its retrieved chunks."""
        if self.inputs is None:
            return render(self.prompt, row.question, contexts)
        if not isinstance(self.inputs, BoundInputs):
            raise PromptError(f"{self.prompt.path}: its input mapping is not bound to the "
                              "curated tables yet (a bug: bind before rendering)")
        return self.prompt.render(**self.inputs.values(row, contexts))


def cross(prompts: list[Prompt], models: list[str],
          params: dict[str, Any] | None = None) -> list[Candidate]:
    """The cross product, in a stable order."""
    return [Candidate(p, m, dict(params or {})) for p in prompts for m in models]


def qualify(candidates: list[Candidate], default_endpoint: str) -> list[Candidate]:
    """Every candidate with its endpoint named; ids name it only for models two endpoints serve.

    Exact repeats (the run's default model listed again as local/<model>) are dropped.
    """
    endpoints: dict[str, set[str]] = {}
    for c in candidates:
        endpoints.setdefault(c.model, set()).add(c.endpoint or default_endpoint)
    out, seen = [], set()
    for c in candidates:
        shared = len(endpoints[c.model]) > 1
        c = Candidate(c.prompt, c.model, c.params, c.endpoint or default_endpoint, shared,
                      c.inputs)
        if c.candidate_id not in seen:
            seen.add(c.candidate_id)
            out.append(c)
    return out


def candidates_frame(candidates: list[Candidate], default_endpoint: str = "") -> pd.DataFrame:
    rows = [{"candidate_id": c.candidate_id, "prompt_name": c.prompt.name,
             "prompt_version": c.prompt.version, "model": c.model,
             "params": stable_json(c.params), "endpoint": c.endpoint or default_endpoint}
            for c in candidates]
    return conform(pd.DataFrame(rows, columns=CANDIDATES.names), CANDIDATES, name="candidates")
