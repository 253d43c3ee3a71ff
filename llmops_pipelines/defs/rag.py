"""RAG assets: chunks, a Chroma index synced to exactly those chunks, retrieval evaluation."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from llmops_pipelines import tables
from llmops_pipelines.defs.metadata import markdown_table, preview
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import SettingsError
from llmops_pipelines.promotion.gates import load_recall_gate
from llmops_pipelines.rag import chunking, retrieval
from llmops_pipelines.rag.app import retrieve, retrieve_all_modes

GROUP = "rag"
KS = (1, 3, 5, 10)
GATE_K = 5
SAMPLE_QUERIES = 5


def _tokenizer(llmops: LlmopsResource) -> tuple[str, Callable[[str], int]]:
    """The embedding model's own token count when the provider has one, else ~4 chars a token."""
    count = getattr(llmops.embedder, "count_tokens", None)
    if count is None:
        return "approx (4 chars a token)", chunking.approx_tokens
    return f"{llmops.settings.embedding_model} tokenizer", count


@dg.asset(group_name=GROUP)
def rag_chunks(context: dg.AssetExecutionContext, llmops: LlmopsResource,
               curated_documents: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Markdown-aware chunks with their heading path, sized in the embedder's own tokens."""
    settings = llmops.settings
    limit = getattr(llmops.embedder, "max_input_tokens", None)
    if limit and settings.chunk_tokens > limit:
        raise SettingsError(f"LLMOPS_CHUNK_TOKENS={settings.chunk_tokens} exceeds the "
                            f"{limit} tokens {settings.embedding_model} embeds; lower it")
    config = chunking.ChunkConfig(settings.chunk_tokens, settings.chunk_overlap)
    tokenizer, count = _tokenizer(llmops)
    chunks = chunking.chunk_documents(curated_documents, config, count)
    tokens = [count(t) for t in chunks["text"]]
    context.log.info(f"{len(chunks)} chunks from {len(curated_documents)} documents ({tokenizer})")
    return dg.Output(chunks, metadata={
        "rows": len(chunks), "documents": len(curated_documents), "chunker": config.key(),
        "tokenizer": tokenizer, "max_chunk_tokens": max(tokens, default=0),
        "mean_chunk_tokens": float(np.mean(tokens)) if tokens else 0.0,
        "preview": preview(chunks[["chunk_id", "doc_id", "heading", "text"]]),
    })


@dg.asset(group_name=GROUP)
def rag_index(context: dg.AssetExecutionContext, llmops: LlmopsResource,
              rag_chunks: pd.DataFrame) -> dg.Output[dict]:
    """Sync the Chroma collection: embed only new chunks, delete stale ones."""
    index, settings = llmops.index(), llmops.settings
    # A typo'd or emptied datasets folder must not sync the live index down to nothing.
    report = index.sync(rag_chunks, progress=context.log.info, source=str(settings.datasets_dir),
                        max_shrink=None if settings.index_allow_shrink else settings.index_max_shrink)
    value = {"collection": index.name, "index_version": report.index_version,
             "count": report.count, "added": len(report.plan.to_add),
             "deleted": len(report.plan.to_delete), "metadata_updated": len(report.plan.to_update),
             "unchanged": report.plan.unchanged, "embed_calls": report.embed_calls,
             "embedding_model": llmops.settings.embedding_model,
             "store": tables.masked(llmops.settings.chroma_url or llmops.settings.chroma_dir)}
    context.log.info(f"index {report.index_version}: {value}")
    metadata: dict[str, Any] = {**value, "sync_seconds": round(report.seconds, 3)}
    return dg.Output(value, metadata=metadata)


@dg.asset(group_name=GROUP)
def retrieval_evaluation(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                         curated_qa: pd.DataFrame, rag_chunks: pd.DataFrame,
                         rag_index: dict) -> dg.Output[pd.DataFrame]:
    """Recall@k, MRR@k and hit rate by source document on the eval split: vector, BM25, hybrid."""
    qa = curated_qa[(curated_qa["split"] == "eval") & curated_qa["doc_id"].notna()]
    qa = qa.sort_values("qa_id")
    lexical = retrieval.BM25Index(rag_chunks["chunk_id"], rag_chunks["text"], rag_chunks["doc_id"])
    found = retrieve_all_modes(llmops.embedder, llmops.index(), qa["question"].tolist(), max(KS),
                               lexical)
    ranks = pd.concat([retrieval.ranks_frame(qa, [[r.doc_id for r in hits] for hits in found[m]], m)
                       for m in retrieval.MODES])
    summary = retrieval.summarise(ranks, KS).assign(index_version=rag_index["index_version"])
    at_gate = summary[summary["k"] == GATE_K].set_index("mode")
    configured = llmops.settings.retrieval
    best = max(retrieval.MODES, key=lambda m: (at_gate.loc[m, "recall"], at_gate.loc[m, "mrr"])) \
        if len(qa) else "n/a (no eval question names its source document)"
    context.log.info(f"recall@{GATE_K} on {len(qa)} eval questions: "
                     f"{at_gate['recall'].round(3).to_dict()}")
    table = summary.pivot_table(index="mode", columns="k", values=["recall", "mrr"], sort=False)
    table.columns = [f"{name}@{k}" for name, k in table.columns]
    return dg.Output(summary, metadata={
        "questions": len(qa), "index_version": rag_index["index_version"],
        "configured_mode": configured, "best_mode": best,
        **{f"recall@{GATE_K} {m}": float(at_gate.loc[m, "recall"]) for m in retrieval.MODES},
        **{f"mrr@{GATE_K} {m}": float(at_gate.loc[m, "mrr"]) for m in retrieval.MODES},
        "comparison": dg.MetadataValue.md(markdown_table(table.reset_index())),
        "hit_rate_by_document": dg.MetadataValue.md(
            markdown_table(retrieval.by_document(ranks, GATE_K)) if len(qa) else "_no questions_"),
    })


@dg.asset_check(asset=rag_index, additional_ins={"rag_chunks": dg.AssetIn("rag_chunks")},
                blocking=True)
def index_holds_exactly_the_chunks(llmops: LlmopsResource,
                                   rag_chunks: pd.DataFrame) -> dg.AssetCheckResult:
    """Index count = wanted chunk count, no orphan chunk in the collection, none missing."""
    present, wanted = llmops.index().ids(), set(rag_chunks["chunk_id"])
    orphans, missing = sorted(present - wanted), sorted(wanted - present)
    return dg.AssetCheckResult(
        passed=len(present) == len(wanted) and not orphans and not missing,
        metadata={"count": len(present), "wanted": len(wanted), "orphans": len(orphans),
                  "missing": len(missing), "examples": ", ".join((orphans + missing)[:5])})


@dg.asset_check(asset=rag_index, additional_ins={"rag_chunks": dg.AssetIn("rag_chunks")},
                blocking=True)
def sample_queries_return_results(llmops: LlmopsResource,
                                  rag_chunks: pd.DataFrame) -> dg.AssetCheckResult:
    """A few chunks' heading lines, asked as questions, each retrieve something."""
    if rag_chunks.empty:
        return dg.AssetCheckResult(passed=False, description="rag_chunks is empty: nothing to query")
    picks = np.linspace(0, len(rag_chunks) - 1, min(SAMPLE_QUERIES, len(rag_chunks))).astype(int)
    sample = rag_chunks.iloc[np.unique(picks)]
    queries = [text.split("\n", 1)[0] for text in sample["text"]]
    found = retrieve(llmops.embedder, llmops.index(), queries, llmops.settings.top_k,
                     mode=llmops.settings.retrieval)
    own_doc = sum(d in {r.doc_id for r in hits} for d, hits in zip(sample["doc_id"], found,
                                                                     strict=True))
    return dg.AssetCheckResult(
        passed=all(found), metadata={"queries": len(queries),
                                     "with_results": sum(bool(hits) for hits in found),
                                     "own_document_retrieved": own_doc,
                                     "mode": llmops.settings.retrieval})


@dg.asset_check(asset=retrieval_evaluation)
def recall_at_5_above_gate(llmops: LlmopsResource,
                           retrieval_evaluation: pd.DataFrame) -> dg.AssetCheckResult:
    """recall@5 of the configured retrieval mode meets `retrieval.recall_at_5` in gates.yaml."""
    gates = llmops.settings.assets_dir / "gates.yaml"
    gate = load_recall_gate(gates)
    mode = llmops.settings.retrieval
    row = retrieval_evaluation[(retrieval_evaluation["mode"] == mode)
                               & (retrieval_evaluation["k"] == GATE_K)]
    if gate is None:
        return dg.AssetCheckResult(passed=True, description=f"{gates} sets no retrieval gate")
    if row.empty or int(row["questions"].iloc[0]) == 0:
        return dg.AssetCheckResult(passed=False, description=(
            "no eval question names its source document: add `source` to the Q&A file"))
    recall = float(row["recall"].iloc[0])
    return dg.AssetCheckResult(passed=recall >= gate, metadata={
        "mode": mode, f"recall@{GATE_K}": recall, "gate": gate,
        "questions": int(row["questions"].iloc[0])})
