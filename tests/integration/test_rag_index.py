"""Incremental Chroma sync against real Chroma: exact embedding counts, stale chunks, stores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import chromadb
import numpy as np
import pandas as pd
import pytest
from chromadb.config import Settings as ChromaSettings

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.providers import make_provider
from llmops_pipelines.providers.local import LocalProvider
from llmops_pipelines.rag.app import retrieve
from llmops_pipelines.rag.chunking import ChunkConfig, chunk_documents, index_version
from llmops_pipelines.rag.vectorstore import EMBED_BATCH, ChromaIndex, collection_name
from llmops_pipelines.settings import Settings
from tests.conftest import CONTOSO, needs_contoso
from tests.support.chroma_server import ChromaServer

CONFIG = ChunkConfig(max_tokens=48)
TOPICS = {
    "tent": ("Tent", "pitching the tent, the rainfly, the aluminium poles and the stakes"),
    "stove": ("Stove", "lighting the burner, the fuel canister, simmer control and cleaning"),
    "boots": ("Boots", "lacing the hiking boots, waterproof leather care and sole wear"),
    "lamp": ("Lamp", "the headlamp beam, charging its battery and the red night mode"),
}


def corpus(**overrides: str | None) -> pd.DataFrame:
    """Four manuals of several sections each; an override replaces (or with None drops) one."""
    rows = []
    for doc_id, (title, about) in TOPICS.items():
        text = f"# {title}\n\n" + "\n\n".join(
            f"## Part {n}\n\nThis part of the {title.lower()} manual covers {about}. "
            f"Step {n} is described in detail with care." for n in range(1, 5))
        text = overrides.get(doc_id, text) if doc_id in overrides else text
        if text is not None:
            rows.append({"doc_id": doc_id, "title": title, "text": text})
    return pd.DataFrame(rows)


def chunks_of(docs: pd.DataFrame) -> pd.DataFrame:
    return chunk_documents(docs, CONFIG)


def snapshot(index: ChromaIndex) -> dict:
    got = index.collection.get(include=["embeddings", "metadatas", "documents"])
    order = np.argsort(got["ids"])
    return {"ids": [got["ids"][i] for i in order],
            "documents": [got["documents"][i] for i in order],
            "metadatas": [got["metadatas"][i] for i in order],
            "embeddings": np.asarray(got["embeddings"])[order],
            "collection": dict(index.collection.metadata or {})}


def assert_same(a: dict, b: dict) -> None:
    assert a["ids"] == b["ids"] and a["documents"] == b["documents"]
    assert a["metadatas"] == b["metadatas"] and a["collection"] == b["collection"]
    np.testing.assert_array_equal(a["embeddings"], b["embeddings"])


def local_index(path: Path) -> tuple[ChromaIndex, LocalProvider]:
    provider = LocalProvider(Settings.from_env())
    index = ChromaIndex.open(path=str(path), embedding_model=provider.embedding_model,
                             embed=provider.embed)
    return index, provider


def test_incremental_sync_embeds_only_what_changed(tmp_path: Path) -> None:
    index, provider = local_index(tmp_path / "chroma")
    embedded = provider.stats.items
    first = chunks_of(corpus())
    report = index.sync(first)
    assert report.embedded == len(first) == embedded["embed"] == report.count
    assert index.index_version == report.index_version == index_version(first["chunk_id"],
                                                                         provider.embedding_model)
    before = snapshot(index)

    # Nothing changed: not one text embedded, the collection byte-for-byte the same.
    again = index.sync(chunks_of(corpus()))
    assert (again.embedded, again.embed_calls, embedded["embed"]) == (0, 0, len(first))
    assert again.plan.unchanged == len(first) and not again.plan.to_update
    assert_same(before, snapshot(index))

    # One document edited in one section: exactly its new chunks are embedded.
    edited_text = corpus()["text"][1].replace("Step 2 is described", "Step 2 is now described")
    edited = chunks_of(corpus(stove=edited_text))
    new_ids = set(edited["chunk_id"]) - set(first["chunk_id"])
    stale = set(first["chunk_id"]) - set(edited["chunk_id"])
    assert len(new_ids) == len(stale) == 1  # one section changed: one chunk in, one out
    report = index.sync(edited)
    assert embedded["embed"] == len(first) + len(new_ids) and report.embedded == len(new_ids)
    assert set(report.plan.to_add) == new_ids and set(report.plan.to_delete) == stale
    assert index.ids() == set(edited["chunk_id"])
    # The stove's other chunks kept their vectors; their document version moved with the edit.
    assert set(report.plan.to_update) == set(edited[edited["doc_id"] == "stove"]["chunk_id"]) - new_ids
    stored = index.stored_metadata()
    assert {stored[i]["doc_version"] for i in edited[edited["doc_id"] == "stove"]["chunk_id"]} == \
        set(edited[edited["doc_id"] == "stove"]["doc_version"])

    # A document removed: all of its chunks go, nothing is embedded.
    removed = chunks_of(corpus(stove=edited_text, lamp=None))
    report = index.sync(removed)
    assert report.embedded == 0 and embedded["embed"] == len(first) + len(new_ids)
    assert set(report.plan.to_delete) == set(edited[edited["doc_id"] == "lamp"]["chunk_id"])
    assert report.count == len(removed)
    assert {m["doc_id"] for m in index.stored_metadata().values()} == {"tent", "stove", "boots"}


def test_inserted_paragraph_moves_positions_without_reembedding(tmp_path: Path) -> None:
    index, provider = local_index(tmp_path / "chroma")
    first = chunks_of(corpus())
    index.sync(first)
    # A new section at the top of the tent manual: every later tent chunk keeps its text
    # (its id) but not its position.
    text = corpus()["text"][0].replace("# Tent\n\n", "# Tent\n\n## Safety\n\nKeep flames away.\n\n")
    moved = chunks_of(corpus(tent=text))
    report = index.sync(moved)
    assert report.embedded == 1 and len(report.plan.to_add) == 1 and not report.plan.to_delete
    stored = index.stored_metadata()
    tent = moved[moved["doc_id"] == "tent"]
    assert [stored[i]["position"] for i in tent["chunk_id"]] == list(tent["position"])
    assert len(report.plan.to_update) == len(tent) - 1


def test_a_sync_that_died_half_way_is_invisible_to_readers_and_resumes(tmp_path: Path) -> None:
    provider = LocalProvider(Settings.from_env())
    calls = []

    def dies_on_second_batch(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        if len(calls) == 2:
            raise ConnectionError("embedding endpoint went away")
        return provider.embed(texts)

    chunks = chunks_of(corpus())
    index = ChromaIndex.open(path=str(tmp_path / "chroma"), embedding_model=provider.embedding_model,
                             embed=dies_on_second_batch)
    with pytest.raises(ConnectionError):
        index.sync(chunks, batch_size=4)
    # The half-built version is never live: readers, this one and a fresh one, see no index yet
    # (never 4 of the chunks as if they were all).
    reopened = ChromaIndex.open(path=str(tmp_path / "chroma"),
                                embedding_model=provider.embedding_model, embed=provider.embed)
    for reader in (index, reopened):
        assert reader.index_version is None and reader.collection.count() == 0
    before = provider.stats.items["embed"]
    report = index.sync(chunks, batch_size=100)
    # Only what the failed run did not store is embedded now.
    assert report.embedded == len(chunks) - 4 == provider.stats.items["embed"] - before
    assert index.index_version == report.index_version and index.collection.count() == len(chunks)
    reopened.refresh()
    assert reopened.index_version == report.index_version and reopened.ids() == index.ids()


def test_reopened_collection_embeds_with_the_registered_function(tmp_path: Path) -> None:
    index, _ = local_index(tmp_path / "chroma")
    index.sync(chunks_of(corpus()))
    name = index.name
    del index
    # A fresh client that passes no embedding function: Chroma rebuilds ours from its config.
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_collection(name)
    result = collection.query(query_texts=["how do I charge the headlamp battery"], n_results=1)
    assert result["metadatas"][0][0]["doc_id"] == "lamp"


def test_reopened_collection_refuses_another_models_queries(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    index, _ = local_index(tmp_path / "chroma")
    index.sync(chunks_of(corpus()))
    monkeypatch.setenv("LLMOPS_EMBEDDING_MODEL", "text-embedding-3-small")
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_collection(index.name)
    assert collection.count() == len(chunks_of(corpus()))  # reading still works
    with pytest.raises(ProviderError, match="holds 'all-minilm-l6-v2-int8' vectors but "
                                            "LLMOPS_EMBEDDING_MODEL selects 'text-embedding-3-small'"):
        collection.query(query_texts=["battery"], n_results=1)


def test_embedding_model_change_builds_a_new_collection(tmp_path: Path) -> None:
    index, _ = local_index(tmp_path / "chroma")
    index.sync(chunks_of(corpus()))
    other = ChromaIndex.open(path=str(tmp_path / "chroma"), embedding_model="another/model:v2",
                             embed=lambda texts: np.ones((len(texts), 8), dtype=np.float32))
    assert other.name == collection_name("another/model:v2") != index.name
    assert other.collection.count() == 0 and index.collection.count() > 0


def test_remote_embeddings_are_counted_by_the_server(openai_env, tmp_path: Path) -> None:
    server = openai_env
    provider = make_provider(Settings.from_env())
    index = ChromaIndex.open(path=str(tmp_path / "chroma"), embedding_model=provider.embedding_model,
                             embed=provider.embed)
    first = chunks_of(corpus())
    index.sync(first, batch_size=5)
    assert server.counts["embeddings"] == math.ceil(len(first) / 5)
    server.reset()
    index.sync(chunks_of(corpus()), batch_size=5)
    assert server.counts["embeddings"] == 0
    edited = chunks_of(corpus(boots=corpus()["text"][2] + "\n\n## Part 5\n\nResole them yearly."))
    report = index.sync(edited, batch_size=5)
    assert report.embedded == 1 and server.counts["embeddings"] == 1
    assert report.embed_calls == 1 and EMBED_BATCH >= 5


def test_retrieval_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index, provider = local_index(tmp_path / "chroma")
    index.sync(chunks_of(corpus()))
    question = ["Which fuel canister does the stove burner take?"]
    for mode in ("vector", "bm25", "hybrid"):
        monkeypatch.setenv("LLMOPS_RETRIEVAL", mode)
        hits = retrieve(provider, index, question, 3, mode="vector")[0]
        assert len(hits) == 3 and hits[0].doc_id == "stove", mode
    # BM25 scores and fused RRF scores are not cosines: each mode ranks by its own score.
    bm25 = retrieve(provider, index, question, 3, mode="bm25")[0]
    assert bm25[0].score > 1.0 and bm25[0].score >= bm25[1].score
    fused = retrieve(provider, index, question, 3, mode="hybrid")[0]
    # Two rankings fused: a chunk scores at most 1/61 + 1/61 (first in both).
    assert 1 / 61 < fused[0].score <= 2 / 61
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)
    with pytest.raises(ValueError, match="retrieval mode 'sparse'"):
        retrieve(provider, index, question, 3, mode="sparse")


def test_chroma_server_through_llmops_chroma_url(tmp_path: Path, openai_env,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`chroma run` on 127.0.0.1: the HttpClient path syncs incrementally like the local store."""
    server = openai_env
    with ChromaServer(tmp_path / "chroma-server") as chroma:
        monkeypatch.setenv("LLMOPS_CHROMA_URL", chroma.url)
        settings = Settings.from_env()
        provider = make_provider(settings)
        index = ChromaIndex.open(path=None, url=settings.chroma_url,
                                 embedding_model=settings.embedding_model, embed=provider.embed)
        # Over HTTP to the server, and nothing written to the local persistent store.
        assert index.client.get_settings().chroma_api_impl.endswith("FastAPI")
        assert not (tmp_path / "llmops-home" / "chroma").exists()
        first = chunks_of(corpus())
        assert index.sync(first).count == len(first)
        calls = server.counts["embeddings"]
        assert index.sync(chunks_of(corpus())).embedded == 0
        assert server.counts["embeddings"] == calls
        report = index.sync(chunks_of(corpus(tent=None)))
        assert report.count == len(first) - (first["doc_id"] == "tent").sum()
        hits = retrieve(provider, index, ["stove fuel canister"], 2, mode="vector")[0]
        assert hits and all(h.doc_id != "tent" for h in hits)
        assert index.index_version == report.index_version


@needs_contoso
def test_contoso_manuals_chunk_within_the_embedders_token_budget() -> None:
    """Real markdown written elsewhere, cut by MiniLM's own tokenizer: no chunk over budget."""
    provider = LocalProvider(Settings.from_env())
    docs = pd.DataFrame([{"doc_id": p.stem, "title": p.read_text().split("\n", 1)[0][2:],
                          "text": p.read_text()} for p in sorted((CONTOSO / "manuals").glob("*.md"))])
    for budget in (160, 40):  # 40 forces line, sentence and word splits on spec lists and FAQs
        chunks = chunk_documents(docs, ChunkConfig(max_tokens=budget), provider.count_tokens)
        tokens = chunks["text"].map(provider.count_tokens)
        assert tokens.max() <= budget and chunks["chunk_id"].is_unique
        # Positions follow the text (a repeated identical chunk keeps its first position only).
        assert chunks.groupby("doc_id")["position"].is_monotonic_increasing.all()
        assert all(t.startswith(title) for t, title in zip(chunks["text"], chunks["title"],
                                                           strict=True))
