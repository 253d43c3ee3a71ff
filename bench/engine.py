"""Evaluation engine vs a sequential loop against a local OpenAI-compatible server with latency."""

from __future__ import annotations

import os
import time

import pandas as pd

from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.cost import Pricing
from llmops_pipelines.evaluation.runner import RunContext, evaluate
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.settings import Settings, project_root
from llmops_pipelines.vectorstore import Retrieved
from tests.support.openai_server import FakeOpenAIServer


def _qa(n: int) -> pd.DataFrame:
    return pd.DataFrame({"qa_id": [f"q{i:05d}" for i in range(n)],
                         "question": [f"How long does charger model {i} take?" for i in range(n)],
                         "ground_truth": [f"Charger {i} takes {i % 7 + 2} hours." for i in range(n)],
                         "doc_id": ["charging"] * n})


def _timed(server: FakeOpenAIServer, home, qa, concurrency: int) -> tuple[float, int]:
    # The official client reads the key from the environment, as in production.
    os.environ.setdefault("OPENAI_API_KEY", "bench-key")
    settings = Settings.from_env({"LLMOPS_PROVIDER": "openai", "OPENAI_API_KEY": "bench",
                                  "OPENAI_BASE_URL": server.base_url, "LLMOPS_HOME": str(home)})
    provider = OpenAIProvider(settings)
    root = project_root()
    prompts = load_prompts(root / "assets" / "prompts")[:1]
    contexts = [[Retrieved(f"c{i}", "charging", f"Charger {i} takes {i % 7 + 2} hours.", 0.9)]
                for i in range(len(qa))]
    cache = CallCache(home / f"cache-{concurrency}.sqlite")
    ctx = RunContext(provider, Pricing.load(root / "assets" / "pricing.yaml"), cache,
                     concurrency, {"data": "bench", "index": "bench"}, progress=lambda _: None)
    started = time.perf_counter()
    rows = evaluate(cross(prompts, [settings.chat_model]), qa, contexts, ctx, {"max_tokens": 32})
    elapsed = time.perf_counter() - started
    cache.close()
    return elapsed, len(rows)


def run(quick: bool = False) -> dict:
    import tempfile
    from pathlib import Path

    latency = 0.05
    n = 80 if quick else 400
    qa = _qa(n)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency_s=latency) as server:
        sequential, _ = _timed(server, Path(tmp), qa.head(n // 8), 1)
        sequential_per_row = sequential / (n // 8)
        concurrent, rows = _timed(server, Path(tmp), qa, 16)
        rerun, _ = _timed(server, Path(tmp), qa, 16)  # same cache file: nothing changed
    return {
        "rows": rows, "server_latency_s": latency, "concurrency": 16,
        "sequential_rows_per_s": round(1 / sequential_per_row, 1),
        "engine_rows_per_s": round(rows / concurrent, 1),
        "speedup_vs_sequential": round(sequential_per_row * rows / concurrent, 1),
        "rerun_wall_ratio": round(rerun / concurrent, 3),
    }
