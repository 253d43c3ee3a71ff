"""Candidates: every prompt version x model x params, each with a content id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmops_pipelines.hashing import content_hash, stable_json
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.schemas import CANDIDATES, conform


@dataclass(frozen=True)
class Candidate:
    prompt: Prompt
    model: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def candidate_id(self) -> str:
        # Readable prefix for people, content hash for identity.
        digest = content_hash(self.prompt.version, self.model, self.params, length=8)
        return f"{self.prompt.name}@{self.model}#{digest}"


def cross(prompts: list[Prompt], models: list[str],
          params: dict[str, Any] | None = None) -> list[Candidate]:
    """The cross product, in a stable order."""
    return [Candidate(p, m, dict(params or {})) for p in prompts for m in models]


def candidates_frame(candidates: list[Candidate]) -> pd.DataFrame:
    rows = [{"candidate_id": c.candidate_id, "prompt_name": c.prompt.name,
             "prompt_version": c.prompt.version, "model": c.model,
             "params": stable_json(c.params)} for c in candidates]
    return conform(pd.DataFrame(rows, columns=CANDIDATES.names), CANDIDATES, name="candidates")
