"""Chroma behind a small interface: incremental sync by chunk id and top-k retrieval."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from llmops_pipelines.errors import DataError, ProviderError, SettingsError
from llmops_pipelines.providers import make_provider
from llmops_pipelines.rag.chunking import (
    SyncPlan,
    chunk_metadata,
    index_version,
    metadata_updates,
    plan_sync,
)
from llmops_pipelines.rag.retrieval import BM25Index, Retrieved
from llmops_pipelines.settings import Settings

log = logging.getLogger(__name__)

EMBED_BATCH = 128
PROGRESS_EVERY = 1000  # chunks between two progress lines of a sync
GET_PAGE = 5000
# A sync may shrink the collection by at most this share (net of what it adds) unless allowed.
MAX_SHRINK = 0.5


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


def collection_name(embedding_model: str) -> str:
    """One collection per embedding model, so vectors of two models never mix."""
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", embedding_model).strip("-._")
    return f"chunks-{slug}"[:63].rstrip("-._")


@dataclass(frozen=True)
class SyncReport:
    """What a sync did: its plan, texts embedded, embed calls, the resulting count and version."""

    plan: SyncPlan
    embedded: int
    count: int
    index_version: str = ""
    embed_calls: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0


def _refuse_shrink(present: int, deleting: int, wanted: int, source: str,
                   max_shrink: float | None) -> None:
    if max_shrink is None or present == 0 or (wanted > 0 and wanted >= present * (1 - max_shrink)):
        return
    where = f" from {source}" if source else ""
    raise DataError(
        f"refusing to sync the index{where}: it would delete {deleting} of {present} chunks and "
        f"keep {wanted} (more than {max_shrink:.0%} of the collection lost"
        f"{'; the curated set is empty' if wanted == 0 else ''}); check LLMOPS_DATASETS_DIR, or "
        "set LLMOPS_INDEX_ALLOW_SHRINK=1 if this is intended")


class ChromaIndex:
    """A Chroma collection whose ids are chunk content hashes."""

    def __init__(self, client: Any, embedding_model: str,
                 embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.client = client
        self.embed = embed
        self.embedding_model = embedding_model
        self.name = collection_name(embedding_model)
        self.collection = client.get_or_create_collection(
            self.name,
            embedding_function=ProviderEmbeddingFunction(embed, embedding_model),
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": embedding_model},
        )
        self._lexical: BM25Index | None = None

    @classmethod
    def open(cls, *, path: str | None = None, url: str | None = None, embedding_model: str,
             embed: Callable[[Sequence[str]], np.ndarray]) -> ChromaIndex:
        """A persistent local index, or a Chroma server's when a URL is given."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if url:
            match = re.match(r"^(https?)://([^:/]+)(?::(\d+))?/?$", url)
            if not match:
                raise SettingsError(f"LLMOPS_CHROMA_URL={url!r} is not http(s)://host[:port]")
            client = chromadb.HttpClient(host=match.group(2), port=int(match.group(3) or 8000),
                                         ssl=match.group(1) == "https", settings=chroma_settings)
        elif path:
            client = chromadb.PersistentClient(path=path, settings=chroma_settings)
        else:
            raise SettingsError("a Chroma index needs a local path or LLMOPS_CHROMA_URL")
        return cls(client, embedding_model, embed)

    def _pages(self, include: list[str]) -> Iterator[dict[str, Any]]:
        # Paged, so a large index never loads in one response.
        offset = 0
        while True:
            page = self.collection.get(include=include, limit=GET_PAGE, offset=offset)  # type: ignore[arg-type]
            yield page
            if len(page["ids"]) < GET_PAGE:
                return
            offset += GET_PAGE

    def ids(self) -> set[str]:
        """Every id in the collection."""
        return {i for page in self._pages([]) for i in page["ids"]}

    def stored_metadata(self) -> dict[str, dict[str, Any]]:
        """Every id with the metadata stored beside its vector."""
        return {i: dict(m or {}) for page in self._pages(["metadatas"])
                for i, m in zip(page["ids"], page["metadatas"], strict=True)}

    @property
    def index_version(self) -> str | None:
        """The version the last completed sync recorded ('syncing' while one is under way)."""
        return (self.collection.metadata or {}).get("index_version")

    def _set_version(self, version: str) -> None:
        if self.index_version != version:
            self.collection.modify(metadata={"embedding_model": self.embedding_model,
                                             "index_version": version})

    def sync(self, chunks: pd.DataFrame, *, batch_size: int = EMBED_BATCH,
             progress_every: int = PROGRESS_EVERY,
             progress: Callable[[str], None] = log.info, source: str = "",
             max_shrink: float | None = MAX_SHRINK) -> SyncReport:
        """Add new chunks, delete stale ones, leave the rest untouched (no embedding calls).

        Refuses (DataError, nothing touched) a sync that would leave the collection more than
        max_shrink smaller than it is, or empty: the mark of a wrong or emptied datasets folder
        (`source`, named in the error), not of an edit. max_shrink=None allows anything.
        """
        started = time.perf_counter()
        wanted = chunk_metadata(chunks)
        present = self.stored_metadata()
        plan = replace(plan_sync(wanted, present), to_update=metadata_updates(wanted, present))
        _refuse_shrink(len(present), len(plan.to_delete), len(wanted), source, max_shrink)
        version = index_version(wanted, self.embedding_model)
        if plan.to_add or plan.to_delete or plan.to_update:
            # A sync that dies half-way must not look like a finished one to readers.
            self._set_version("syncing")
            self._lexical = None
        for start in range(0, len(plan.to_delete), GET_PAGE):
            self.collection.delete(ids=plan.to_delete[start:start + GET_PAGE])
        for start in range(0, len(plan.to_update), GET_PAGE):
            ids = plan.to_update[start:start + GET_PAGE]
            # Metadata only: Chroma embeds nothing when neither documents nor vectors change.
            self.collection.update(ids=ids, metadatas=[wanted[i] for i in ids])
        texts = chunks.drop_duplicates("chunk_id").set_index("chunk_id")["text"]
        # Similar lengths in one batch keep the embedder's padding (wasted work) low.
        new = texts.loc[plan.to_add].sort_values(key=lambda s: s.str.len(), kind="stable")
        embed_seconds, calls, logged = 0.0, 0, 0
        for start in range(0, len(new), batch_size):
            batch = new.iloc[start:start + batch_size]
            tick = time.perf_counter()
            vectors = self.embed(batch.tolist())
            embed_seconds += time.perf_counter() - tick
            calls += 1
            self.collection.add(ids=batch.index.tolist(), documents=batch.tolist(),
                                embeddings=vectors,
                                metadatas=[wanted[i] for i in batch.index])
            done = start + len(batch)
            if done - logged >= progress_every or done == len(new):
                progress(f"embedded {done}/{len(new)} new chunks")
                logged = done
        self._set_version(version)
        return SyncReport(plan, len(new), self.collection.count(), version, calls,
                          embed_seconds, time.perf_counter() - started)

    def lexical(self) -> BM25Index:
        """A BM25 index over exactly the chunks in the collection (rebuilt after a sync changes it)."""
        if self._lexical is None:
            ids, texts, doc_ids = [], [], []
            for page in self._pages(["documents", "metadatas"]):
                ids += page["ids"]
                texts += page["documents"]
                doc_ids += [m["doc_id"] for m in page["metadatas"]]
            self._lexical = BM25Index(ids, texts, doc_ids)
        return self._lexical

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
