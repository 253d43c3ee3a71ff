"""What a change costs: chat calls made vs the rows that truly changed, after each kind of edit.

1,000 synthetic manuals chunked and indexed in Chroma (embeddings from the test server), 500
questions, 2 candidates, LLM judges on: a first evaluation, then one change at a time. For
each, the bench computes the rows that must be answered again from the retrieved chunk ids
before and after (ids are content hashes) and the judge inputs that are new, independently of
the engine, and compares them with the calls counted at the server: the ratio must be 1.00.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.rag import synthetic_docs
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import Candidate, cross
from llmops_pipelines.evaluation.judges import Judges
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.runner import RunContext, evaluate
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.rag.app import retrieve
from llmops_pipelines.rag.chunking import chunk_documents
from llmops_pipelines.rag.vectorstore import ChromaIndex
from llmops_pipelines.settings import Settings, project_root
from tests.support.openai_server import FakeOpenAIServer

ROOT = project_root()
LATENCY_S = 0.02


def _questions(docs: pd.DataFrame, n: int, seed: int = 1) -> pd.DataFrame:
    """n questions, each quoting words of one sentence of its own manual (so retrieval finds it)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        doc = docs.iloc[(i * 2) % len(docs)]
        paragraphs = [p for p in doc["text"].split("\n\n") if not p.startswith("#")]
        sentences = [s.strip() for p in paragraphs for s in p.split(".") if len(s.split()) > 6]
        sentence = rng.choice(sentences)
        words = sentence.split()
        rows.append({"qa_id": f"q{i:04d}", "doc_id": doc["doc_id"],
                     "question": "What about " + " ".join(words[:6]).lower() + "?",
                     "ground_truth": sentence + "."})
    return pd.DataFrame(rows)


class Bench:
    """One evaluation setup whose inputs a scenario edits, evaluated again after each edit."""

    def __init__(self, server: FakeOpenAIServer, home: Path, n_docs: int, n_questions: int) -> None:
        os.environ.setdefault("OPENAI_API_KEY", "bench-key")
        self.server, self.home = server, home
        self.provider = OpenAIProvider(Settings.from_env({
            "LLMOPS_PROVIDER": "openai", "OPENAI_API_KEY": "bench", "LLMOPS_HOME": str(home),
            "OPENAI_BASE_URL": server.base_url, "LLMOPS_OPENAI_MAX_RETRIES": "0"}))
        self.index = ChromaIndex.open(path=str(home / "chroma"),
                                      embedding_model=self.provider.embedding_model,
                                      embed=self.provider.embed)
        self.docs = synthetic_docs(n_docs)
        self.qa = _questions(self.docs, n_questions)
        self.candidates: list[Candidate] = cross(load_prompts(ROOT / "assets" / "prompts")[:2],
                                                 ["gpt-4o-mini"])
        self.evaluators = home / "evaluators"  # a copy the rubric scenario edits
        shutil.copytree(ROOT / "assets" / "evaluators", self.evaluators)
        self.judges = Judges.load(self.evaluators, "gpt-4o-mini")
        self.top_k, self.mode = 3, "vector"
        self.rows: pd.DataFrame | None = None
        self.seen_judge_inputs: set[Any] = set()

    def sync(self) -> str:
        chunks = chunk_documents(self.docs, count_tokens=lambda text: len(text.split()))
        self.index.sync(chunks, progress=lambda _: None)
        return self.index.index_version or ""

    def contexts(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """Each row's retrieved chunk ids on the current documents (the index synced first)."""
        self.sync()
        found = retrieve(self.provider, self.index, self.qa["question"].tolist(), self.top_k,
                         mode=self.mode)
        ids = [tuple(c.chunk_id for c in hits) for hits in found]
        return {(c.candidate_id, q): ctx for c in self.candidates
                for q, ctx in zip(self.qa["qa_id"], ids, strict=True)}

    def evaluate(self) -> tuple[pd.DataFrame, float]:
        version = self.sync()
        contexts = retrieve(self.provider, self.index, self.qa["question"].tolist(), self.top_k,
                            mode=self.mode)
        cache = CallCache(self.home / "cache.sqlite")
        ctx = RunContext(self.provider, Pricing.load(ROOT / "assets" / "pricing.yaml"), cache, 32,
                         {"data": "bench", "index": version}, progress=lambda _: None,
                         judges=self.judges)
        self.server.reset()
        started = time.perf_counter()
        try:
            rows = evaluate(self.candidates, self.qa, contexts, ctx, {"max_tokens": 32})
        finally:
            cache.close()
        wall = time.perf_counter() - started
        assert rows["error"].isna().all(), rows["error"].dropna().head()
        self.rows = rows
        return rows, wall

    def judge_inputs(self, rows: pd.DataFrame) -> set[Any]:
        """What each judge call depends on: its rubric version and the texts it quotes."""
        quality = {("quality", self.judges.quality.version, r.question, r.ground_truth, r.answer)
                   for r in rows.itertuples()}
        grounded = {("grounded", self.judges.groundedness.version, tuple(r.context_ids), r.answer)
                    for r in rows.itertuples()}
        return quality | grounded

    def calls(self) -> tuple[int, int]:
        """(answer calls, judge calls) the server answered since the last evaluate()."""
        judge = sum(1 for kind, body in self.server.requests
                    if kind == "chat" and body.get("response_format"))
        return self.server.counts["chat"] - judge, judge


def _edit_doc(bench: Bench, row: int) -> None:
    """Append a sentence after the one question `row` quotes, in its manual: one chunk changes."""
    sentence = bench.qa.loc[row, "ground_truth"].rstrip(".")
    docs = bench.docs.copy()
    at = docs.index[docs["doc_id"] == bench.qa.loc[row, "doc_id"]][0]
    assert sentence in docs.loc[at, "text"]
    docs.loc[at, "text"] = docs.loc[at, "text"].replace(
        sentence, sentence + ". Rinse with fresh water after every trip", 1)
    bench.docs = docs


def _scenarios(bench: Bench) -> list[tuple[str, Any]]:
    def doc() -> None:
        _edit_doc(bench, len(bench.qa) // 2)

    def truth() -> None:
        bench.qa.loc[0, "ground_truth"] = bench.qa.loc[0, "ground_truth"] + " Always."

    def question() -> None:
        extra = _questions(bench.docs, len(bench.qa) + 1, seed=7).iloc[[-1]].assign(qa_id="q9999")
        bench.qa = pd.concat([bench.qa, extra], ignore_index=True)

    def rubric() -> None:
        path = bench.evaluators / "groundedness_judge.prompty"
        path.write_text(path.read_text().replace("user:", "Be strict.\n\nuser:", 1))
        bench.judges = Judges.load(bench.evaluators, "gpt-4o-mini")

    def top_k() -> None:
        bench.top_k = 2

    def mode() -> None:
        bench.mode = "hybrid"

    return [("nothing changed", lambda: None), ("one document edited", doc),
            ("one ground truth edited", truth), ("one question added", question),
            ("one judge rubric edited", rubric), ("top_k 3 -> 2", top_k),
            ("retrieval vector -> hybrid", mode)]


def run(quick: bool = False) -> dict:
    n_docs, n_questions = (200, 100) if quick else (1000, 500)
    out: dict = {"docs": n_docs, "questions": n_questions, "candidates": 2, "judges": "on"}
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency_s=LATENCY_S) as server:
        bench = Bench(server, Path(tmp), n_docs, n_questions)
        rows, first_wall = bench.evaluate()
        answers, judges = bench.calls()
        out["first_run"] = {"rows": len(rows), "answer_calls": answers, "judge_calls": judges,
                            "wall_s": round(first_wall, 2)}
        bench.seen_judge_inputs = bench.judge_inputs(rows)
        for name, change in _scenarios(bench):
            before = bench.contexts()
            change()
            after = bench.contexts()
            must_answer = {row for row, ids in after.items() if before.get(row) != ids}
            rows, wall = bench.evaluate()
            answers, judges = bench.calls()
            new_inputs = bench.judge_inputs(rows) - bench.seen_judge_inputs
            bench.seen_judge_inputs |= new_inputs
            out[name] = {
                "rows": len(rows), "rows_contexts_changed": len(must_answer),
                "answer_calls": answers,
                "answer_ratio": round(answers / len(must_answer), 3) if must_answer else
                ("1.00 (0 of 0)" if answers == 0 else f"{answers} calls for 0 rows"),
                "new_judge_inputs": len(new_inputs), "judge_calls": judges,
                "judge_ratio": round(judges / len(new_inputs), 3) if new_inputs else
                ("1.00 (0 of 0)" if judges == 0 else f"{judges} calls for 0 inputs"),
                "wall_s": round(wall, 2), "wall_share_of_first": round(wall / first_wall, 3)}
    return out
