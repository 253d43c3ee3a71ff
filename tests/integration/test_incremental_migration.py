"""Upgrading keeps the cache: entries written under the previous key formula are found, 0 calls.

Before row-level invalidation, an answer's key was salted with the index version
(plan.py at commit 93f78f6: content_hash(namespace, messages, model, params, index_version)),
and a row's metrics were keyed by that answer key. This test writes a cache exactly that way,
then evaluates with the current code and counts the calls at the server.
"""

from __future__ import annotations

import pandas as pd

from llmops_pipelines.evaluation.cache import CallCache, SqliteCalls
from llmops_pipelines.evaluation.plan import answer_key, metrics_key
from llmops_pipelines.evaluation.runner import RunContext, evaluate
from llmops_pipelines.evaluation.scoring import EVALUATOR_VERSION
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.rag.app import chat_params, render
from tests.integration.test_evaluation_engine import PRICING, Harness, assert_one_row_each
from tests.support.openai_server import FakeOpenAIServer

DEFAULTS = {"max_tokens": 64}  # what Harness.run passes


def _old_answer_key(namespace, messages, model, params, index_version) -> str:
    # Verbatim the formula of the release before this change.
    return content_hash(namespace, messages, model, params, index_version, length=32)


def _rekey_as_previous_release(harness: Harness, index_version: str) -> int:
    """Move every answer and metrics entry to the key the previous release used; returns rows."""
    provider = OpenAIProvider(harness.settings)
    namespace = provider.cache_namespace
    cache = CallCache(harness.home / "cache.sqlite")
    moved = 0
    try:
        for candidate in harness.candidates:
            params = {**chat_params(candidate.prompt, DEFAULTS), **candidate.params}
            for row, ctx in zip(harness.qa.itertuples(index=False), harness.contexts, strict=True):
                messages = render(candidate.prompt, row.question, ctx)
                new = answer_key(namespace, messages, candidate.model, params)
                old = _old_answer_key(namespace, messages, candidate.model, params, index_version)
                pairs = [(new, old, "chat")]
                pairs.append(tuple(metrics_key(k, row.ground_truth, namespace,
                                               provider.embedding_model, EVALUATOR_VERSION, None)
                                   for k in (new, old)) + ("metrics",))
                for new_key, old_key, kind in pairs:
                    value = cache.get(new_key)
                    assert value is not None
                    cache.put(old_key, kind, value)
                    store = cache._store  # noqa: SLF001 - the test rewrites the store by hand
                    assert isinstance(store, SqliteCalls)
                    with store._lock:  # noqa: SLF001
                        store._conn.execute("DELETE FROM calls WHERE key = ?", (new_key,))  # noqa: SLF001
                moved += 1
    finally:
        cache.close()
    return moved


def _run(harness: Harness, *, index_version: str, legacy_index_version: str) -> pd.DataFrame:
    cache = CallCache(harness.home / "cache.sqlite")
    ctx = RunContext(OpenAIProvider(harness.settings), PRICING, cache, 8,
                     {"data": "dv", "index": index_version}, progress=harness.messages.append,
                     legacy_index_version=legacy_index_version)
    try:
        return evaluate(harness.candidates, harness.qa, harness.contexts, ctx, DEFAULTS)
    finally:
        cache.close()


def test_a_cache_built_under_the_previous_key_formula_needs_no_call(
        tmp_path, monkeypatch) -> None:
    with FakeOpenAIServer() as server:
        harness = Harness(server, tmp_path, monkeypatch, n=12)
        first = harness.run()
        assert server.counts["chat"] == harness.total
        assert _rekey_as_previous_release(harness, "iv") == harness.total  # Harness's index "iv"
        assert harness.cached("chat") == harness.total  # only old keys are left
        server.reset()
        again = harness.run()
        assert sum(server.counts.values()) == 0, dict(server.counts)
    assert_one_row_each(again, harness)
    assert again["cached"].all()
    assert again["answer"].tolist() == first["answer"].tolist()
    assert again["quality"].tolist() == first["quality"].tolist()
    # The entries were copied under the new keys (the old ones stay for older releases).
    assert harness.cached("chat") == 2 * harness.total


def test_after_an_upgrade_only_rows_whose_messages_changed_are_asked(
        tmp_path, monkeypatch) -> None:
    with FakeOpenAIServer() as server:
        harness = Harness(server, tmp_path, monkeypatch, n=12)
        harness.run()
        _rekey_as_previous_release(harness, "iv")
        # One chunk's text changes: its question's rows (one per candidate) are new messages.
        old = harness.contexts[3][0]
        harness.contexts[3] = [type(old)(old.chunk_id + "x", old.doc_id, old.text + " Edited.",
                                         old.score)]
        server.reset()
        # The edit gives the index a new version; the asset passes the previous rows' version
        # (their lineage) as the one the old keys were salted with.
        rows = _run(harness, index_version="iv2", legacy_index_version="iv")
    assert server.counts["chat"] == len(harness.candidates)
    assert set(rows.loc[~rows["cached"], "qa_id"]) == {harness.qa["qa_id"].iloc[3]}
