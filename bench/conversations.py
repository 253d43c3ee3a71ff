"""Which conversation query mode retrieves better: concat vs rewrite (local MiniLM + SmolLM2).

On datasets/conversations.jsonl, each conversation's last question is searched three ways:
the question alone (no history: the floor), `concat` (the earlier user turns + the question,
serving's default) and `rewrite` (the local chat model rewrites it standalone). A hit: the
conversation's expected_doc_id among the top-k retrieved chunks' documents (k = LLMOPS_TOP_K,
mode = LLMOPS_RETRIEVAL), as evaluation's expected_doc_retrieved counts it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from llmops_pipelines.curation import conversations as cc
from llmops_pipelines.evaluation.conversations import queries, turns
from llmops_pipelines.providers.local import LocalProvider
from llmops_pipelines.rag import retrieval
from llmops_pipelines.rag.app import retrieve
from llmops_pipelines.rag.chunking import ChunkConfig, chunk_documents
from llmops_pipelines.rag.conversation import REWRITE_MAX_TOKENS
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.settings import Settings

DATASETS = Path(__file__).resolve().parents[1] / "datasets"


def _docs(folder: Path) -> pd.DataFrame:
    rows = [{"doc_id": p.stem, "title": p.read_text(encoding="utf-8").split("\n", 1)[0]
             .lstrip("# ").strip(), "text": p.read_text(encoding="utf-8")}
            for p in sorted((folder / "docs").glob("*.md"))]
    return pd.DataFrame(rows)


def run(quick: bool = False) -> dict:
    settings = Settings.from_env()
    provider = LocalProvider(settings)
    conversations = cc.curate(DATASETS).conversations
    parsed = turns(conversations)
    expected = conversations["expected_doc_id"].tolist()

    def rewrite(messages: list) -> str:
        return provider.chat(messages, temperature=0.0, max_tokens=REWRITE_MAX_TOKENS).text

    started = time.perf_counter()
    searched = {"question_only": [t.question for t in parsed],
                "concat": queries(parsed, "concat")}
    if not quick:
        searched["rewrite"] = queries(parsed, "rewrite", rewrite)
    rewrite_s = time.perf_counter() - started
    chunks = chunk_documents(_docs(DATASETS), ChunkConfig(), provider.count_tokens)
    out: dict = {"conversations": len(conversations), "chunks": len(chunks),
                 "top_k": settings.top_k, "retrieval": settings.retrieval,
                 "rewrite_seconds": round(rewrite_s, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        index = ChromaIndex.open(path=tmp, embedding_model=provider.embedding_model,
                                 embed=provider.embed)
        index.sync(chunks, progress=lambda _: None)
        lexical = retrieval.BM25Index(chunks["chunk_id"], chunks["text"], chunks["doc_id"])
        for mode, qs in searched.items():
            found = retrieve(provider, index, qs, settings.top_k, mode=settings.retrieval,
                             lexical=lexical)
            hits = [doc in {r.doc_id for r in hits} for doc, hits in zip(expected, found,
                                                                          strict=True)]
            out[f"{mode} hit_rate@{settings.top_k}"] = round(sum(hits) / len(hits), 3)
            out[f"{mode} misses"] = [c for c, h in zip(conversations["conversation_id"], hits,
                                                       strict=True) if not h]
    if "rewrite" in searched:
        out["rewrites"] = {c: q.split("\n")[0] for c, q in
                           zip(conversations["conversation_id"], searched["rewrite"], strict=True)}
    return out
