"""Curation throughput on a synthetic corpus: 10k documents (markdown files with FAQ sections and
PII, CSV rows), exact and near duplicates, a Q&A file; documents/s overall and per stage."""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from llmops_pipelines.curation import curate

# 1,440 made-up words: documents share words, as real ones do, without being near copies.
VOCAB = [f"{a}{b}{c}" for a in ("tra", "mon", "vel", "qui", "sar", "dor", "lin", "pex", "rav", "tes")
         for b in ("ka", "lo", "mi", "ne", "pu", "ro", "su", "ta", "vi", "ze", "bar", "dun")
         for c in ("", "n", "s", "t", "l", "ri", "m", "x", "do", "ve", "ck", "ph")]


def _text(rng: random.Random, words: int) -> str:
    sentences, current = [], []
    for _ in range(words):
        current.append(rng.choice(VOCAB))
        if len(current) >= rng.randint(8, 18):
            sentences.append(" ".join(current).capitalize() + ".")
            current = []
    return " ".join(sentences + ([" ".join(current) + "."] if current else []))


def _write_corpus(root: Path, n_docs: int, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    markdown = int(n_docs * 0.8)
    rows = n_docs - markdown
    (root / "kb").mkdir(parents=True)
    texts: list[str] = []
    for i in range(markdown):
        if i > 10 and i % 50 == 0:  # 2 %: an exact copy of an earlier article
            text = texts[rng.randrange(len(texts))]
        elif i > 10 and i % 50 == 25:  # 2 %: an earlier article with one sentence added
            text = texts[rng.randrange(len(texts))].replace("\n\n", "\n\nOne more sentence.", 1)
        else:
            body = "\n\n".join(_text(rng, rng.randint(40, 90)) for _ in range(rng.randint(2, 5)))
            if i % 10 == 0:  # 10 %: a support contact to scrub
                body += f"\n\nContact: agent{i}@example.com or 555-{i % 900 + 100:03d}-{i % 10000:04d}."
            faq = "".join(f"\n{j + 1}. {_text(rng, 8)[:-1]}?\n{_text(rng, 15)}\n" for j in range(3))
            text = f"# Article {i}\n\n{body}\n\n## FAQ\n{faq}"
        texts.append(text)
        (root / "kb" / f"article-{i:05d}.md").write_text(text)
    with (root / "catalog.csv").open("w", encoding="utf-8") as f:
        f.write("id,name,price,description\n")
        for i in range(rows):
            f.write(f'{i},Item {i},{rng.randint(5, 500)}.0,"{_text(rng, rng.randint(30, 80))}"\n')
    with (root / "qa.jsonl").open("w", encoding="utf-8") as f:
        for i in range(0, markdown, 2):
            f.write(json.dumps({"id": f"q{i}", "question": f"What does article {i} say?",
                                "answer": _text(rng, 10), "source": f"article-{i:05d}"}) + "\n")
    return {"markdown_files": markdown, "csv_rows": rows, "qa_lines": (markdown + 1) // 2}


def run(quick: bool = False) -> dict:
    n_docs = 1_000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        shape = _write_corpus(root, n_docs)
        started = time.perf_counter()
        result = curate(root)
        seconds = time.perf_counter() - started
        rerun_started = time.perf_counter()
        same = curate(root).data_version == result.data_version
        rerun = time.perf_counter() - rerun_started
    stages = result.stage_seconds
    return {
        **shape, "input_documents": n_docs, "curated_documents": len(result.documents),
        "qa_rows": len(result.qa), "faq_pairs": int((result.qa["origin"] == "faq").sum()),
        "rejects": len(result.rejects),
        "exact_duplicates": result.rule_hits["duplicate_document"],
        "near_duplicates": result.rule_hits["near_duplicate_document"],
        "pii_replacements": sum(result.pii_counts.values()),
        "seconds": round(seconds, 2), "documents_per_s": round(n_docs / seconds, 1),
        "stage_seconds": stages,
        "stage_documents_per_s": {k: round(n_docs / v, 1) for k, v in stages.items() if v > 0},
        "rerun_same_version": same, "rerun_seconds": round(rerun, 2),
    }
