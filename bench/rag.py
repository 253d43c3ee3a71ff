"""RAG index: full build vs one-document incremental sync, and Chroma ingest vs the raw embedder.

Both on the local MiniLM embedder and a persistent Chroma store in a temp dir, in one run.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

import pandas as pd

from llmops_pipelines.providers.local import LocalProvider
from llmops_pipelines.rag.chunking import ChunkConfig, chunk_documents
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.settings import Settings

T = TypeVar("T")
SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "pel", "dri", "sun", "gar", "fen", "bo",
             "quil", "mar", "tor", "ex", "ni", "zu", "hap", "ly"]
SECTIONS = ["Setup", "Use", "Care"]


def _sentence(rng: random.Random) -> str:
    words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(rng.randint(8, 15))]
    return " ".join(words).capitalize() + "."


def synthetic_docs(n: int, seed: int = 0) -> pd.DataFrame:
    """n manuals of three sections, two paragraphs of two sentences each: ~3 chunks a doc."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        body = "\n\n".join(
            f"## {section}\n\n" + "\n\n".join(" ".join(_sentence(rng) for _ in range(2))
                                              for _ in range(2))
            for section in SECTIONS)
        rows.append({"doc_id": f"doc-{i:04d}", "title": f"Product {i}",
                     "text": f"# Product {i}\n\n{body}"})
    return pd.DataFrame(rows)


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def run(quick: bool = False) -> dict:
    n = 200 if quick else 1000
    provider = LocalProvider(Settings.from_env())
    docs = synthetic_docs(n)
    config = ChunkConfig()
    chunks, chunk_s = _timed(lambda: chunk_documents(docs, config, provider.count_tokens))
    texts = chunks["text"].tolist()
    provider.embed(texts[:64])  # warm-up: model load and first-run allocations

    # The raw embedder on exactly the texts the index will ingest.
    _, raw_s = _timed(lambda: provider.embed(texts))

    with tempfile.TemporaryDirectory() as tmp:
        index = ChromaIndex.open(path=tmp, embedding_model=provider.embedding_model,
                                 embed=provider.embed)
        before = provider.stats.items["embed"]
        full, full_s = _timed(lambda: index.sync(chunks, progress=lambda _: None))
        full_embedded = provider.stats.items["embed"] - before

        noop, noop_s = _timed(lambda: index.sync(chunks, progress=lambda _: None))

        # One document edited in one paragraph; the whole corpus is re-chunked, as the asset does.
        edited = docs.copy()
        edited.loc[n // 2, "text"] = edited.loc[n // 2, "text"].replace(
            "## Care\n\n", "## Care\n\nRinse with fresh water after every trip.\n\n")
        rechunked, rechunk_s = _timed(lambda: chunk_documents(edited, config,
                                                              provider.count_tokens))
        before = provider.stats.items["embed"]
        inc, inc_s = _timed(lambda: index.sync(rechunked, progress=lambda _: None))
        inc_embedded = provider.stats.items["embed"] - before
        doc_chunks = int((rechunked["doc_id"] == f"doc-{n // 2:04d}").sum())

    raw_rate, ingest_rate = len(texts) / raw_s, len(texts) / full_s
    return {
        "docs": n, "chunks": len(chunks), "chunk_seconds": round(chunk_s, 2),
        "full_build": {"embedded": full_embedded, "embed_calls": full.embed_calls,
                       "seconds": round(full_s, 2)},
        "unchanged_resync": {"embedded": noop.embedded, "seconds": round(noop_s, 3)},
        "one_doc_incremental": {"embedded": inc_embedded, "embed_calls": inc.embed_calls,
                                "added": len(inc.plan.to_add), "deleted": len(inc.plan.to_delete),
                                "metadata_updated": len(inc.plan.to_update),
                                "edited_doc_chunks": doc_chunks, "seconds": round(inc_s, 3),
                                "rechunk_seconds": round(rechunk_s, 2)},
        "incremental_over_full_embedded": round(inc_embedded / full_embedded, 5),
        "incremental_over_full_seconds": round(inc_s / full_s, 5),
        "raw_embedder_texts_per_s": round(raw_rate, 1),
        "chroma_ingest_chunks_per_s": round(ingest_rate, 1),
        "ingest_over_raw": round(ingest_rate / raw_rate, 3),
        "embed_share_of_sync": round(full.embed_seconds / full.seconds, 3),
    }
