"""Chroma behind a small interface: incremental sync by chunk id and top-k retrieval."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from llmops_pipelines.rag import SyncPlan, plan_sync

log = logging.getLogger(__name__)

EMBED_BATCH = 128
GET_PAGE = 5000


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
        # A reopened collection embeds with the provider the current settings select.
        from llmops_pipelines.providers import make_provider
        from llmops_pipelines.settings import Settings

        provider = make_provider(Settings.from_env())
        return ProviderEmbeddingFunction(provider.embed, config.get("model", provider.embedding_model))

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"


def collection_name(embedding_model: str) -> str:
    """One collection per embedding model, so vectors of two models never mix."""
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", embedding_model).strip("-._")
    return f"chunks-{slug}"[:63].rstrip("-._")


@dataclass(frozen=True)
class Retrieved:
    """One retrieved chunk with its cosine similarity to the query."""

    chunk_id: str
    doc_id: str
    text: str
    score: float


@dataclass(frozen=True)
class SyncReport:
    plan: SyncPlan
    embedded: int
    count: int


class ChromaIndex:
    """A Chroma collection whose ids are chunk content hashes."""

    def __init__(self, client: Any, embedding_model: str,
                 embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.client = client
        self.embed = embed
        self.name = collection_name(embedding_model)
        self.collection = client.get_or_create_collection(
            self.name,
            embedding_function=ProviderEmbeddingFunction(embed, embedding_model),
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": embedding_model},
        )

    @classmethod
    def open(cls, *, path: str | None = None, url: str | None = None, embedding_model: str,
             embed: Callable[[Sequence[str]], np.ndarray]) -> ChromaIndex:
        """A persistent local index, or a Chroma server's when a URL is given."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if url:
            match = re.match(r"^(https?)://([^:/]+)(?::(\d+))?", url)
            if not match:
                raise ValueError(f"LLMOPS_CHROMA_URL={url!r} is not http(s)://host[:port]")
            client = chromadb.HttpClient(host=match.group(2), port=int(match.group(3) or 8000),
                                         ssl=match.group(1) == "https", settings=chroma_settings)
        else:
            client = chromadb.PersistentClient(path=path, settings=chroma_settings)
        return cls(client, embedding_model, embed)

    def ids(self) -> set[str]:
        """Every id in the collection, paged so large indexes do not load at once."""
        found: set[str] = set()
        offset = 0
        while True:
            page = self.collection.get(include=[], limit=GET_PAGE, offset=offset)
            found.update(page["ids"])
            if len(page["ids"]) < GET_PAGE:
                return found
            offset += GET_PAGE

    def sync(self, chunks: pd.DataFrame, *,
             progress: Callable[[str], None] = log.info) -> SyncReport:
        """Add new chunks, delete stale ones, leave the rest untouched (no embedding calls)."""
        plan = plan_sync(chunks["chunk_id"], self.ids())
        if plan.to_delete:
            for start in range(0, len(plan.to_delete), GET_PAGE):
                self.collection.delete(ids=plan.to_delete[start:start + GET_PAGE])
        new = chunks.set_index("chunk_id").loc[plan.to_add]
        for start in range(0, len(new), EMBED_BATCH):
            batch = new.iloc[start:start + EMBED_BATCH]
            vectors = self.embed(batch["text"].tolist())
            self.collection.add(
                ids=batch.index.tolist(), documents=batch["text"].tolist(), embeddings=vectors,
                metadatas=[{"doc_id": r.doc_id, "heading": r.heading or "",
                            "position": int(r.position)} for r in batch.itertuples()],
            )
            progress(f"embedded {min(start + EMBED_BATCH, len(new))}/{len(new)} new chunks")
        return SyncReport(plan, len(new), self.collection.count())

    def query(self, vectors: np.ndarray, k: int) -> list[list[Retrieved]]:
        """Top-k chunks per query vector, best first."""
        if len(vectors) == 0:
            return []
        result = self.collection.query(query_embeddings=vectors, n_results=k,
                                       include=["documents", "metadatas", "distances"])
        out = []
        for ids, docs, metas, dists in zip(result["ids"], result["documents"],
                                           result["metadatas"], result["distances"], strict=True):
            out.append([Retrieved(i, m["doc_id"], d, 1.0 - float(dist))
                        for i, d, m, dist in zip(ids, docs, metas, dists, strict=True)])
        return out
