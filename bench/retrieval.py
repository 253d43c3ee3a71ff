"""Retrieval quality on the external Contoso corpus: vector vs BM25 vs hybrid (local MiniLM).

The questions are the manuals' own FAQ questions (mined by curation's FAQ miner); a question is
answered when a chunk of its source manual comes back. Three variants, easiest first:
  faq_in_index   manuals as-is: the FAQ text itself is indexed (the question is in a chunk)
  faq_removed    FAQ sections cut from the indexed manuals: the body must answer
  name_masked    also the product name replaced by "this product" in every question
"""

from __future__ import annotations

import csv
import re
import tempfile
from pathlib import Path

import pandas as pd

from llmops_pipelines.providers.local import LocalProvider
from llmops_pipelines.rag import retrieval
from llmops_pipelines.rag.app import retrieve_all_modes
from llmops_pipelines.rag.chunking import ChunkConfig, chunk_documents
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.settings import Settings

CONTOSO = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "contoso-outdoors"
FAQ_SECTION = re.compile(r"^## FAQ\b.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
KS = (1, 5, 10)


def contoso(root: Path = CONTOSO) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Manuals (doc_id = file stem), their FAQ questions, and product names by doc id."""
    from llmops_pipelines.curation import faq

    docs, questions = [], []
    for path in sorted((root / "manuals").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        docs.append({"doc_id": path.stem, "title": text.split("\n", 1)[0].lstrip("# ").strip(),
                     "text": text})
        for n, pair in enumerate(faq.mine(text, path.name)):
            questions.append({"qa_id": f"{path.stem}-{n}", "question": pair.question,
                              "doc_id": path.stem})
    with (root / "products.csv").open(encoding="utf-8") as handle:
        names = {f"product_info_{row['id']}": row["name"] for row in csv.DictReader(handle)}
    return pd.DataFrame(docs), pd.DataFrame(questions), names


def _scores(provider: LocalProvider, docs: pd.DataFrame, qa: pd.DataFrame) -> pd.DataFrame:
    chunks = chunk_documents(docs, ChunkConfig(), provider.count_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        index = ChromaIndex.open(path=tmp, embedding_model=provider.embedding_model,
                                 embed=provider.embed)
        index.sync(chunks, progress=lambda _: None)
        lexical = retrieval.BM25Index(chunks["chunk_id"], chunks["text"], chunks["doc_id"])
        found = retrieve_all_modes(provider, index, qa["question"].tolist(), max(KS), lexical)
    ranks = pd.concat([retrieval.ranks_frame(qa, [[r.doc_id for r in h] for h in found[m]], m)
                       for m in retrieval.MODES])
    return retrieval.summarise(ranks, KS).assign(chunks=len(chunks))


def run(quick: bool = False) -> dict:
    provider = LocalProvider(Settings.from_env())
    docs, qa, names = contoso()
    stripped = docs.assign(text=[FAQ_SECTION.sub("", t) for t in docs["text"]])
    masked = qa.assign(question=[
        re.sub(rf"(?:the\s+)?{re.escape(names[d])}", "this product", q, flags=re.IGNORECASE)
        for q, d in zip(qa["question"], qa["doc_id"], strict=True)])
    variants = {"faq_in_index": (docs, qa), "faq_removed": (stripped, qa),
                "name_masked": (stripped, masked)}
    if quick:
        variants = {"faq_removed": variants["faq_removed"]}
    out: dict = {"manuals": len(docs), "questions": len(qa)}
    for name, (d, q) in variants.items():
        summary = _scores(provider, d, q)
        out[name] = {"chunks": int(summary["chunks"].iloc[0])}
        for row in summary.itertuples():
            out[name][f"{row.mode} recall@{row.k}"] = round(row.recall, 3)
            out[name][f"{row.mode} mrr@{row.k}"] = round(row.mrr, 3)
    return out
