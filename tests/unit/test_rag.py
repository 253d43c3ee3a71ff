"""RAG chunking, sync plans and index versions: content-addressed and order-independent."""

from __future__ import annotations

import pandas as pd
import pytest

from llmops_pipelines.errors import DataError
from llmops_pipelines.rag.chunking import (
    ChunkConfig,
    SyncPlan,
    approx_tokens,
    chunk_documents,
    chunk_metadata,
    index_version,
    metadata_updates,
    plan_sync,
)

BATTERY = """# Battery Guide

The battery pack is the heart of the station.

## Charging

A full charge takes 4.5 hours.

Use only the supplied cable.

### Fast charge

Fast mode takes 2 hours.

## Storage

Store it at 50 percent charge.
"""


def _docs(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"doc_id": d, "title": t, "text": x} for d, t, x in rows])


def words(text: str) -> int:
    """A tokenizer stand-in that is easy to count by hand: one token per word."""
    return len(text.split())


def test_heading_path_golden() -> None:
    chunks = chunk_documents(_docs(("battery", "Battery Guide", BATTERY)))
    assert list(chunks["heading"]) == [
        "Battery Guide",
        "Battery Guide > Charging",
        "Battery Guide > Charging > Fast charge",
        "Battery Guide > Storage",  # a sibling replaces the deeper path
    ]
    assert list(chunks["text"]) == [
        "Battery Guide\nThe battery pack is the heart of the station.",
        "Battery Guide > Charging\nA full charge takes 4.5 hours.\n\nUse only the supplied cable.",
        "Battery Guide > Charging > Fast charge\nFast mode takes 2 hours.",
        "Battery Guide > Storage\nStore it at 50 percent charge.",
    ]
    assert list(chunks["position"]) == [0, 1, 2, 3]
    assert set(chunks["doc_id"]) == {"battery"}
    assert set(chunks["title"]) == {"Battery Guide"}


def test_title_prefixes_headings_that_lack_it() -> None:
    text = "Intro before any heading.\n\n## Care\n\nWipe with a dry cloth."
    chunks = chunk_documents(_docs(("care", "Lamp", text)))
    assert list(chunks["heading"]) == ["", "Care"]
    assert list(chunks["text"]) == ["Lamp\nIntro before any heading.",
                                    "Lamp > Care\nWipe with a dry cloth."]


def test_ids_are_stable_and_content_addressed() -> None:
    docs = _docs(("battery", "Battery Guide", BATTERY))
    first = chunk_documents(docs)
    again = chunk_documents(docs.copy())
    assert list(first["chunk_id"]) == list(again["chunk_id"])
    assert first["chunk_id"].is_unique
    assert all(len(i) == 16 for i in first["chunk_id"])

    edited = chunk_documents(_docs(("battery", "Battery Guide",
                                    BATTERY.replace("4.5 hours", "5 hours"))))
    changed = set(first["chunk_id"]) ^ set(edited["chunk_id"])
    # Only the Charging chunk changed: one id left, one id arrived.
    assert len(changed) == 2
    assert list(first["chunk_id"])[0] == list(edited["chunk_id"])[0]

    renamed = chunk_documents(_docs(("battery-v2", "Battery Guide", BATTERY)))
    assert set(renamed["chunk_id"]).isdisjoint(first["chunk_id"])


def test_ids_change_with_chunk_config() -> None:
    docs = _docs(("battery", "Battery Guide", BATTERY))
    default = chunk_documents(docs, ChunkConfig())
    # Same text, same packing (every section is small), different config: new ids.
    other = chunk_documents(docs, ChunkConfig(max_tokens=161))
    assert list(default["text"]) == list(other["text"])
    assert set(default["chunk_id"]).isdisjoint(other["chunk_id"])
    assert ChunkConfig(max_tokens=161).key() != ChunkConfig().key()
    assert ChunkConfig(overlap_paragraphs=1).key() != ChunkConfig().key()


def test_long_section_splits_under_budget() -> None:
    paragraphs = [f"para {i} has exactly six words" for i in range(10)]
    text = "# Tent\n\n## Setup\n\n" + "\n\n".join(paragraphs)
    budget = 16
    chunks = chunk_documents(_docs(("tent", "Tent", text)), ChunkConfig(max_tokens=budget),
                             count_tokens=words)
    # Each chunk is "Tent > Setup" (3 words) + two 6-word paragraphs = 15 <= 16; a third
    # paragraph would make 21.
    assert len(chunks) == 5
    for chunk in chunks.itertuples():
        assert words(chunk.text) <= budget, chunk.text
        assert chunk.text.startswith("Tent > Setup\n")
    # Nothing lost, nothing repeated, order kept.
    bodies = [t.split("\n", 1)[1] for t in chunks["text"]]
    assert "\n\n".join(bodies) == "\n\n".join(paragraphs)
    assert list(chunks["position"]) == list(range(5))


def test_budget_counts_the_heading_line() -> None:
    # Two 6-word paragraphs are 12 words; the heading line makes the chunk 15 > 14.
    paragraphs = [f"para {i} has exactly six words" for i in range(4)]
    text = "# Tent\n\n## Setup\n\n" + "\n\n".join(paragraphs)
    chunks = chunk_documents(_docs(("tent", "Tent", text)), ChunkConfig(max_tokens=14),
                             count_tokens=words)
    assert len(chunks) == 4
    assert max(words(t) for t in chunks["text"]) == 9


def test_overlap_repeats_paragraphs_within_budget() -> None:
    paragraphs = [f"para {i} has exactly six words" for i in range(4)]
    text = "# T\n\n" + "\n\n".join(paragraphs)
    chunks = chunk_documents(_docs(("t", "T", text)),
                             ChunkConfig(max_tokens=13, overlap_paragraphs=1), count_tokens=words)
    bodies = [t.split("\n", 1)[1].split("\n\n") for t in chunks["text"]]
    assert bodies == [paragraphs[0:2], paragraphs[1:3], paragraphs[2:4]]
    assert all(words(t) <= 13 for t in chunks["text"])


def test_overlap_never_pushes_a_chunk_over_budget() -> None:
    # Room for one paragraph only: the carried-over paragraph must give way.
    paragraphs = [f"para {i} has exactly six words" for i in range(3)]
    text = "# T\n\n" + "\n\n".join(paragraphs)
    chunks = chunk_documents(_docs(("t", "T", text)),
                             ChunkConfig(max_tokens=10, overlap_paragraphs=1), count_tokens=words)
    assert [t.split("\n", 1)[1] for t in chunks["text"]] == paragraphs
    assert all(words(t) <= 10 for t in chunks["text"])


def test_default_token_count_is_chars_over_four() -> None:
    assert approx_tokens("") == 1
    assert approx_tokens("abcdefgh") == 2
    assert approx_tokens("x" * 41) == 10


def test_identical_chunks_in_one_document_keep_the_first() -> None:
    text = "# A\n\n## Same\n\nRepeated body.\n\n## Same\n\nRepeated body."
    chunks = chunk_documents(_docs(("a", "A", text)))
    assert list(chunks["text"]) == ["A > Same\nRepeated body."]
    assert chunks["chunk_id"].is_unique


def test_plan_sync_golden() -> None:
    plan = plan_sync(wanted=["c3", "c1", "c2", "c2"], present=["c2", "c4", "c1", "c5"])
    assert plan == SyncPlan(to_add=["c3"], to_delete=["c4", "c5"], unchanged=2)


def test_plan_sync_edges() -> None:
    assert plan_sync(["a", "b"], []) == SyncPlan(["a", "b"], [], 0)
    assert plan_sync([], ["a"]) == SyncPlan([], ["a"], 0)
    assert plan_sync(["a"], ["a"]) == SyncPlan([], [], 1)


def test_index_version_order_independent_and_model_bound() -> None:
    ids = ["c1", "c2", "c3"]
    v = index_version(ids, "all-minilm-l6-v2-int8")
    assert v == index_version(reversed(ids), "all-minilm-l6-v2-int8")
    assert v == index_version(iter(["c3", "c1", "c2"]), "all-minilm-l6-v2-int8")
    assert v != index_version(ids, "text-embedding-3-small")
    assert v != index_version(ids[:2], "all-minilm-l6-v2-int8")
    assert len(v) == 16


def test_long_paragraph_splits_by_sentence_within_budget() -> None:
    sentences = [f"Sentence {i} has exactly six words." for i in range(6)]
    text = "# T\n\n" + " ".join(sentences)  # one paragraph of 36 words
    chunks = chunk_documents(_docs(("t", "T", text)), ChunkConfig(max_tokens=14),
                             count_tokens=words)
    # "T" + two 6-word sentences = 13 <= 14; a third would make 19.
    bodies = [t.split("\n", 1)[1] for t in chunks["text"]]
    assert bodies == [" ".join(sentences[i:i + 2]) for i in range(0, 6, 2)]
    assert all(words(t) <= 14 for t in chunks["text"])


def test_long_list_splits_by_line_before_sentence() -> None:
    lines = [f"- item {i} costs 10 USD." for i in range(6)]  # 5 words a line
    text = "# Specs\n\n" + "\n".join(lines)
    chunks = chunk_documents(_docs(("s", "Specs", text)), ChunkConfig(max_tokens=13),
                             count_tokens=words)
    bodies = [t.split("\n", 1)[1] for t in chunks["text"]]
    # "Specs" + two 6-word lines = 13. Lines keep their line breaks: a list stays a list.
    assert bodies == ["\n".join(lines[i:i + 2]) for i in range(0, 6, 2)]


def test_run_on_text_splits_by_words_then_characters() -> None:
    run_on = " ".join(f"w{i}" for i in range(30))  # no punctuation, no line breaks
    by_words = chunk_documents(_docs(("r", "R", f"# R\n\n{run_on}")), ChunkConfig(max_tokens=11),
                               count_tokens=words)
    assert all(words(t) <= 11 for t in by_words["text"])
    bodies = [t.split("\n", 1)[1] for t in by_words["text"]]
    assert " ".join(bodies).split() == run_on.split() and len(bodies) == 3  # in order, all kept
    blob = "".join(f"{i:02d}" for i in range(45))  # one 90-char "word": 22 approx tokens
    by_chars = chunk_documents(_docs(("b", "B", f"# B\n\n{blob}")), ChunkConfig(max_tokens=10))
    assert all(approx_tokens(t) <= 10 for t in by_chars["text"])
    assert "".join(t.split("\n", 1)[1] for t in by_chars["text"]) == blob
    assert len(by_chars) == 3


def test_heading_path_over_budget_names_the_fix() -> None:
    text = "# " + " ".join(["long"] * 20) + "\n\nbody"
    with pytest.raises(DataError, match=r"heading path .* fills the 10-token chunk budget.*"
                                        r"LLMOPS_CHUNK_TOKENS"):
        chunk_documents(_docs(("h", "H", text)), ChunkConfig(max_tokens=10), count_tokens=words)


def test_doc_version_follows_the_document_text() -> None:
    docs = _docs(("battery", "Battery Guide", BATTERY))
    first = chunk_documents(docs)
    assert first["doc_version"].nunique() == 1
    edited = chunk_documents(_docs(("battery", "Battery Guide", BATTERY + "\nMore.")))
    assert set(first["doc_version"]).isdisjoint(edited["doc_version"])
    # Curation's own content hash wins when the frame carries one.
    assert set(chunk_documents(docs.assign(content_hash="abc"))["doc_version"]) == {"abc"}


def test_chunk_metadata_golden() -> None:
    chunks = chunk_documents(_docs(("care", "Lamp", "Intro.\n\n## Care\n\nWipe it.")))
    meta = chunk_metadata(chunks)
    version = chunks["doc_version"][0]
    assert list(meta.values()) == [
        {"doc_id": "care", "title": "Lamp", "heading": "", "position": 0, "doc_version": version},
        {"doc_id": "care", "title": "Lamp", "heading": "Care", "position": 1,
         "doc_version": version},
    ]
    assert list(meta) == list(chunks["chunk_id"])


def test_metadata_updates_only_for_kept_ids_that_moved() -> None:
    wanted = {"a": {"position": 0}, "b": {"position": 2}, "new": {"position": 3}}
    present = {"a": {"position": 0}, "b": {"position": 1}, "gone": {"position": 5}}
    assert metadata_updates(wanted, present) == ["b"]
    assert metadata_updates(wanted, {"a": None}) == ["a"]
