"""Chroma behind a small interface: versioned incremental sync by chunk id, top-k retrieval."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from llmops_pipelines.errors import DataError, SettingsError
from llmops_pipelines.rag import versions
from llmops_pipelines.rag.chroma_client import chroma_client
from llmops_pipelines.rag.chunking import (
    SyncPlan,
    chunk_metadata,
    index_version,
    metadata_updates,
    plan_sync,
)
from llmops_pipelines.rag.embedding_function import ProviderEmbeddingFunction
from llmops_pipelines.rag.retrieval import BM25Index, Retrieved
from llmops_pipelines.settings import Settings

log = logging.getLogger(__name__)

EMBED_BATCH = 128
PROGRESS_EVERY = 1000  # chunks between two progress lines of a sync
GET_PAGE = 5000
# A sync may shrink the collection by at most this share (net of what it adds) unless allowed.
MAX_SHRINK = 0.5


def collection_name(embedding_model: str) -> str:
    """The pointer collection of an embedding model (its versions are named after it), so vectors
    of two models never mix."""
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


def _pages(collection: Any, include: list[str]) -> Iterator[dict[str, Any]]:
    # Paged, so a large index never loads in one response.
    offset = 0
    while True:
        page = collection.get(include=include, limit=GET_PAGE, offset=offset)
        yield page
        if len(page["ids"]) < GET_PAGE:
            return
        offset += GET_PAGE


class ChromaIndex:
    """The live version of an embedding model's index: a Chroma collection whose ids are chunk
    content hashes, found through the model's pointer collection (see rag/versions.py)."""

    def __init__(self, client: Any, embedding_model: str,
                 embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.client = client
        self.embed = embed
        self.embedding_model = embedding_model
        self.pointer_name = collection_name(embedding_model)
        self._function = ProviderEmbeddingFunction(embed, embedding_model)
        self.pointer = self._collection(self.pointer_name, {"embedding_model": embedding_model})
        self._lexical: BM25Index | None = None
        self.refresh()

    def _collection(self, name: str, metadata: dict[str, Any]) -> Any:
        from chromadb.errors import UniqueConstraintError

        # Metadata is only set on creation: get_or_create never overwrites an existing one's.
        try:
            return self.client.get_or_create_collection(
                name, embedding_function=self._function,
                configuration={"hnsw": {"space": "cosine"}}, metadata=metadata)
        except UniqueConstraintError:  # another run created it between our get and create
            return self.client.get_collection(name, embedding_function=self._function)

    def refresh(self) -> None:
        """Resolve the pointer again: read the version the last completed sync made live."""
        from chromadb.errors import NotFoundError

        live = (self.client.get_collection(self.pointer_name, embedding_function=self._function)
                .metadata or {}).get(versions.LIVE)
        if (live or self.pointer_name) == getattr(self, "name", None):
            return  # still live: keep the collection (and its BM25 index)
        try:
            # No live version yet: the pointer itself (empty, or an index built in place before
            # versions existed, whose records it still holds).
            self.collection = self.client.get_collection(live, embedding_function=self._function) \
                if live else self.pointer
        except NotFoundError as exc:
            raise DataError(f"the index pointer {self.pointer_name} names version {live}, which "
                            "is not in the Chroma store: materialize rag_index again") from exc
        self.name = self.collection.name
        self._lexical = None

    @classmethod
    def from_settings(cls, settings: Settings, embed: Callable[[Sequence[str]], np.ndarray],
                      ) -> ChromaIndex:
        """The run's index: LLMOPS_CHROMA_URL (+ LLMOPS_CHROMA_TOKEN) or the local store."""
        return cls.open(path=str(settings.chroma_dir), url=settings.chroma_url,
                        embedding_model=settings.embedding_model, embed=embed,
                        token=settings.chroma_token, token_header=settings.chroma_token_header)

    @classmethod
    def open(cls, *, path: str | None = None, url: str | None = None, embedding_model: str,
             embed: Callable[[Sequence[str]], np.ndarray], token: str | None = None,
             token_header: str = "Authorization") -> ChromaIndex:
        """A persistent local index, or a Chroma server's when a URL is given."""
        from chromadb.errors import AuthorizationError, ChromaAuthError

        try:  # the client asks the server who we are on creation: refusals come from here too
            client = chroma_client(path=path, url=url, token=token, token_header=token_header)
            return cls(client, embedding_model, embed)
        except (AuthorizationError, ChromaAuthError) as exc:
            # The server's own words name no secret; ours name the variables, never the value.
            given = f"the LLMOPS_CHROMA_TOKEN given (sent as {token_header})" if token else \
                "no LLMOPS_CHROMA_TOKEN"
            raise SettingsError(f"the Chroma server at LLMOPS_CHROMA_URL={url} refused {given}: "
                                "set LLMOPS_CHROMA_TOKEN to the server's token (and "
                                "LLMOPS_CHROMA_TOKEN_HEADER to the header it expects)") from exc

    def _pages(self, include: list[str]) -> Iterator[dict[str, Any]]:
        return _pages(self.collection, include)

    def ids(self) -> set[str]:
        """Every id in the collection."""
        return {i for page in self._pages([]) for i in page["ids"]}

    def stored_metadata(self) -> dict[str, dict[str, Any]]:
        """Every id with the metadata stored beside its vector."""
        return {i: dict(m or {}) for page in self._pages(["metadatas"])
                for i, m in zip(page["ids"], page["metadatas"], strict=True)}

    @property
    def index_version(self) -> str | None:
        """The live version's index_version (None before the first sync)."""
        return (self.collection.metadata or {}).get("index_version")

    def sync(self, chunks: pd.DataFrame, *, batch_size: int = EMBED_BATCH,
             progress_every: int = PROGRESS_EVERY,
             progress: Callable[[str], None] = log.info, source: str = "",
             max_shrink: float | None = MAX_SHRINK) -> SyncReport:
        """Build the version holding exactly these chunks (embedding only new ones), make it live.

        Refuses (DataError, nothing touched) a sync that would leave the index more than
        max_shrink smaller than it is, or empty: the mark of a wrong or emptied datasets folder
        (`source`, named in the error), not of an edit. max_shrink=None allows anything.
        """
        started = time.perf_counter()
        self.refresh()  # against what is live now: another run may have flipped since we opened
        wanted = chunk_metadata(chunks)
        present = self.stored_metadata()
        plan = replace(plan_sync(wanted, present), to_update=metadata_updates(wanted, present))
        _refuse_shrink(len(present), len(plan.to_delete), len(wanted), source, max_shrink)
        version = index_version(wanted, self.embedding_model)
        build = versions.build_id(wanted, self.embedding_model)
        name = versions.version_name(self.pointer_name, build)
        if name == self.name:  # exactly this version is live: nothing to write
            return SyncReport(plan, 0, self.collection.count(), version, 0, 0.0,
                              time.perf_counter() - started)
        target = self._collection(name, versions.version_metadata(
            self.pointer_name, self.embedding_model, version, build, "building"))
        # Ids already there come from a build that died or one running beside this one: the
        # same content either way, so only what is missing is written.
        have = {i for page in _pages(target, []) for i in page["ids"]}
        self._copy_kept([i for i in wanted if i in present and i not in have], target, wanted)
        texts = chunks.drop_duplicates("chunk_id").set_index("chunk_id")["text"]
        # Similar lengths in one batch keep the embedder's padding (wasted work) low.
        new = texts.loc[[i for i in plan.to_add if i not in have]].sort_values(
            key=lambda s: s.str.len(), kind="stable")
        embed_seconds, calls, logged = 0.0, 0, 0
        for start in range(0, len(new), batch_size):
            batch = new.iloc[start:start + batch_size]
            tick = time.perf_counter()
            vectors = self.embed(batch.tolist())
            embed_seconds += time.perf_counter() - tick
            calls += 1
            target.upsert(ids=batch.index.tolist(), documents=batch.tolist(), embeddings=vectors,
                          metadatas=[wanted[i] for i in batch.index])
            done = start + len(batch)
            if done - logged >= progress_every or done == len(new):
                progress(f"embedded {done}/{len(new)} new chunks")
                logged = done
        self._go_live(target, version, build, len(wanted))
        return SyncReport(plan, len(new), target.count(), version, calls,
                          embed_seconds, time.perf_counter() - started)

    def _copy_kept(self, ids: list[str], target: Any, wanted: dict[str, dict[str, Any]]) -> None:
        """Kept chunks' vectors and texts from the live version, with their wanted metadata."""
        for start in range(0, len(ids), GET_PAGE):
            page = self.collection.get(ids=ids[start:start + GET_PAGE],
                                       include=["embeddings", "documents"])
            target.upsert(ids=page["ids"], embeddings=page["embeddings"],
                          documents=page["documents"], metadatas=[wanted[i] for i in page["ids"]])

    def _go_live(self, target: Any, version: str, build: str, expected: int) -> None:
        """Mark the version complete, flip the pointer to it, remove versions nobody can use."""
        if (count := target.count()) != expected:
            raise DataError(f"index version {target.name} holds {count} chunks, not the "
                            f"{expected} it was built with: something else writes to it")
        target.modify(metadata=versions.version_metadata(
            self.pointer_name, self.embedding_model, version, build, "complete"))
        previous = self.name
        self.pointer.modify(metadata=versions.pointer_metadata(self.embedding_model, version,
                                                               target.name))
        self.collection, self.name, self._lexical = target, target.name, None
        keep = {target.name, previous}
        for other in self.client.list_collections():
            if versions.removable(other.metadata, self.pointer_name, keep, other.name, time.time()):
                # Read again just before: a run may have just completed (re-dated) this version.
                fresh = self.client.get_collection(other.name,
                                                   embedding_function=self._function).metadata
                if versions.removable(fresh, self.pointer_name, keep, other.name, time.time()):
                    self.client.delete_collection(other.name)

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
        from chromadb.errors import NotFoundError

        if len(vectors) == 0:
            return []
        try:
            result = self.collection.query(query_embeddings=vectors, n_results=k,
                                           include=["documents", "metadatas", "distances"])
        except NotFoundError:  # a long-lived reader's version was replaced and removed since
            self.refresh()
            result = self.collection.query(query_embeddings=vectors, n_results=k,
                                           include=["documents", "metadatas", "distances"])
        out = []
        for ids, docs, metas, dists in zip(result["ids"], result["documents"],
                                           result["metadatas"], result["distances"], strict=True):
            out.append([Retrieved(i, m["doc_id"], d, 1.0 - float(dist))
                        for i, d, m, dist in zip(ids, docs, metas, dists, strict=True)])
        return out
