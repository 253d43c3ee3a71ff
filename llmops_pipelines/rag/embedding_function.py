"""Our provider's embedder as a Chroma embedding function, registered by name.

Registered so Chroma, opening a collection without an embedder (a notebook, `chroma` tools),
rebuilds ours from the collection's config instead of its downloading default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.providers import make_provider
from llmops_pipelines.settings import Settings


@register_embedding_function
class ProviderEmbeddingFunction(EmbeddingFunction[Documents]):
    """Our provider's embedder, registered so Chroma never falls back to its downloading default."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], model: str) -> None:
        self._embed = embed
        self.model = model

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._embed(list(input)))

    @staticmethod
    def name() -> str:
        return "llmops-provider"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ProviderEmbeddingFunction:
        # Chroma calls this, with no run around it, when a client opens the collection without
        # passing an embedder (a notebook, `chroma` tools): like an entry point, it reads the
        # settings itself and embeds with the provider they select.
        provider = make_provider(Settings.from_env())
        model = config.get("model", provider.embedding_model)
        if model == provider.embedding_model:
            return ProviderEmbeddingFunction(provider.embed, model)

        # Opening (reading, listing) still works; only embedding with the wrong model is refused.
        def refuse(texts: Sequence[str]) -> np.ndarray:
            raise ProviderError(
                f"this collection holds {model!r} vectors but LLMOPS_EMBEDDING_MODEL selects "
                f"{provider.embedding_model!r}; set it back to {model!r} to query it")

        return ProviderEmbeddingFunction(refuse, model)

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"
