"""A team's Chroma server: token auth behind a gateway, and runs racing on one index."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from llmops_pipelines.definitions import defs
from llmops_pipelines.errors import SettingsError
from llmops_pipelines.rag.chunking import index_version
from llmops_pipelines.rag.vectorstore import ChromaIndex, SyncReport
from llmops_pipelines.settings import Settings
from tests.integration.test_rag_index import chunks_of, corpus
from tests.integration.test_tables_uri import every_metadata_text
from tests.support.chroma_proxy import TokenProxy
from tests.support.chroma_server import ChromaServer

TOKEN = "team-chroma-token-7f3a9c"
MODEL = "hash-embedder-16"


def embed(texts: Sequence[str]) -> np.ndarray:
    """Deterministic unit vectors from the text alone, a little slow so two syncs interleave."""
    time.sleep(0.02)
    rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], dtype=np.uint8)
            for t in texts]
    vectors = np.asarray(rows, dtype=np.float32) - 127.5
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory):
    with ChromaServer(tmp_path_factory.mktemp("chroma-team") / "store") as server:
        yield server


def test_token_is_sent_on_every_request_and_never_shown(chroma, openai_env, monkeypatch) -> None:
    with TokenProxy(chroma.url, TOKEN) as proxy:
        monkeypatch.setenv("LLMOPS_CHROMA_URL", proxy.url)
        monkeypatch.setenv("LLMOPS_CHROMA_TOKEN", TOKEN)
        result = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                                instance=dg.DagsterInstance.ephemeral(),
                                selection=dg.AssetSelection.groups("curation")
                                | dg.AssetSelection.assets("rag_chunks", "rag_index"))
        assert result.success
        checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["index_holds_exactly_the_chunks"] and checks["sample_queries_return_results"]
        assert proxy.forwarded > 0 and proxy.refused == 0
        assert TOKEN not in every_metadata_text(result)
        assert TOKEN not in repr(Settings.from_env())

        # No token, or a wrong one: refused with the variables to fix, never the value.
        monkeypatch.delenv("LLMOPS_CHROMA_TOKEN")
        with pytest.raises(SettingsError, match="LLMOPS_CHROMA_URL=.*refused no LLMOPS_CHROMA_TOKEN"):
            ChromaIndex.from_settings(Settings.from_env(), embed)
        monkeypatch.setenv("LLMOPS_CHROMA_TOKEN", "wrong-token-1234")
        with pytest.raises(SettingsError, match="set LLMOPS_CHROMA_TOKEN") as refused:
            ChromaIndex.from_settings(Settings.from_env(), embed)
        assert "wrong-token-1234" not in str(refused.value) + repr(refused.value.__cause__)
        failed = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                                selection=dg.AssetSelection.groups("curation")
                                | dg.AssetSelection.assets("rag_chunks", "rag_index"))
        assert not failed.success
        assert "wrong-token-1234" not in every_metadata_text(failed)
        assert proxy.refused >= 2


def test_x_chroma_token_header(chroma, monkeypatch) -> None:
    with TokenProxy(chroma.url, TOKEN, header="X-Chroma-Token") as proxy:
        monkeypatch.setenv("LLMOPS_CHROMA_URL", proxy.url)
        monkeypatch.setenv("LLMOPS_CHROMA_TOKEN", TOKEN)
        monkeypatch.setenv("LLMOPS_CHROMA_TOKEN_HEADER", "x-chroma-token")
        index = ChromaIndex.from_settings(Settings.from_env(), embed)
        chunks = chunks_of(corpus())
        # The collection is named by the settings' embedding model: a model of its own here.
        assert index.sync(chunks).count == len(chunks)
        assert index.query(embed(chunks["text"][:1].tolist()), 1)[0][0].chunk_id == \
            chunks["chunk_id"].iloc[0]
        assert proxy.refused == 0 and proxy.forwarded > 0


def race(url: str, sets: list[pd.DataFrame]) -> list[SyncReport]:
    """One thread per chunk set, each with its own client, all syncing at once."""
    barrier = threading.Barrier(len(sets))
    reports: list[SyncReport | BaseException] = [RuntimeError("not run")] * len(sets)

    def run(slot: int) -> None:
        try:
            index = ChromaIndex.open(url=url, embedding_model=MODEL, embed=embed)
            barrier.wait(timeout=30)
            reports[slot] = index.sync(sets[slot], batch_size=2)
        except BaseException as exc:  # noqa: BLE001 (re-raised by the test below)
            reports[slot] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(sets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for r in reports:
        if isinstance(r, BaseException):
            raise r
    return [r for r in reports if isinstance(r, SyncReport)]


def assert_one_whole_version(url: str, sets: list[pd.DataFrame], reports: list[SyncReport]) -> None:
    index = ChromaIndex.open(url=url, embedding_model=MODEL, embed=embed)
    live = index.ids()
    matching = [s for s in sets if set(s["chunk_id"]) == live]
    assert matching, f"the live version holds a mixture: {len(live)} ids, none of the sets"
    assert index.index_version == index_version(live, MODEL)
    assert index.index_version in {r.index_version for r in reports}
    assert index.collection.count() == len(live)
    probe = matching[0].iloc[len(matching[0]) // 2]
    hits = index.query(embed([probe["text"]]), 3)[0]
    assert hits[0].chunk_id == probe["chunk_id"] and {h.chunk_id for h in hits} <= live


def test_racing_syncs_leave_exactly_one_whole_version(chroma) -> None:
    full = chunks_of(corpus())
    edited = chunks_of(corpus(lamp=None, stove="# Stove\n\n## Fuel\n\nUse butane canisters only."))
    smaller = chunks_of(corpus(boots=None))
    # A first index, then two different edits racing, then the same set twice, then all three.
    assert race(chroma.url, [full])[0].count == len(full)
    for sets in ([edited, smaller], [full, full], [full, edited, smaller]):
        reports = race(chroma.url, sets)
        assert_one_whole_version(chroma.url, sets, reports)
        assert all(r.count == len(s) for r, s in zip(reports, sets, strict=True))


def test_bad_input_never_replaces_the_live_version(chroma) -> None:
    full = chunks_of(corpus())
    race(chroma.url, [full])
    index = ChromaIndex.open(url=chroma.url, embedding_model=MODEL, embed=embed)
    before = (index.name, index.ids())
    with pytest.raises(Exception, match="refusing to sync the index"):
        index.sync(full.iloc[:2])
    again = ChromaIndex.open(url=chroma.url, embedding_model=MODEL, embed=embed)
    assert (again.name, again.ids()) == before


def test_local_store_keeps_its_files_in_one_place(tmp_path: Path) -> None:
    """The versioned layout works on the local persistent store too (the laptop default)."""
    index = ChromaIndex.open(path=str(tmp_path / "chroma"), embedding_model=MODEL, embed=embed)
    first = index.sync(chunks_of(corpus()))
    replaced = index.name
    second = index.sync(chunks_of(corpus(lamp=None)))
    assert second.embedded == 0 and first.index_version != second.index_version
    # The pointer, the live version and the one it replaced (kept for readers in flight).
    assert {c.name for c in index.client.list_collections()} == {index.pointer_name, index.name,
                                                                 replaced}
    assert len({index.pointer_name, index.name, replaced}) == 3


def test_versions_older_than_the_grace_period_are_removed(tmp_path: Path, monkeypatch) -> None:
    from llmops_pipelines.rag import versions

    monkeypatch.setattr(versions, "GRACE_S", -1.0)  # every replaced version is past its grace
    index = ChromaIndex.open(path=str(tmp_path / "chroma"), embedding_model=MODEL, embed=embed)
    built = []
    for docs in (corpus(), corpus(lamp=None), corpus(boots=None)):
        index.sync(chunks_of(docs))
        built.append(index.name)
    # The oldest went; the one just replaced stays for readers that resolved it a moment ago.
    assert {c.name for c in index.client.list_collections()} == {index.pointer_name, *built[1:]}
    assert index.ids() == set(chunks_of(corpus(boots=None))["chunk_id"])
