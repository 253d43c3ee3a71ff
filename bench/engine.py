"""Evaluation engine vs a sequential loop, against a local OpenAI-compatible server with latency.

The server answers after L seconds and admits R chat requests per second (429 + Retry-After
beyond that; real endpoints limit each model separately, so embeddings and moderation are not
capped, only slowed by L). The engine's bound is min(R, concurrency / L) chat requests/s.
Honest conditions: the server's bucket starts EMPTY (no free first second of burst), every
capped run lasts >= 20 s at the cap, one scenario reads the x-ratelimit-* headers, and one
counts every route (chat, embeddings, moderation) in one window, as some gateways do.
`python -m bench.engine --rss N URL` is the child that measures peak RSS on N rows.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.embed_memo import MicroBatcher
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.runner import RunContext, evaluate
from llmops_pipelines.evaluation.scoring import RowInput, Scorers, score_row
from llmops_pipelines.prompts import load_prompts
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.rag.app import chat_params, render
from llmops_pipelines.rag.retrieval import Retrieved
from llmops_pipelines.settings import Settings, project_root
from tests.support.openai_server import FakeOpenAIServer

LATENCY_S, CAP_RPS = 0.2, 50.0
ROOT = project_root()


def _qa(n: int) -> tuple[pd.DataFrame, list[list[Retrieved]]]:
    qa = pd.DataFrame({"qa_id": [f"q{i:06d}" for i in range(n)],
                       "question": [f"How long does charger model {i} take?" for i in range(n)],
                       "ground_truth": [f"Charger {i} takes {i % 7 + 2} hours." for i in range(n)],
                       "doc_id": ["charging"] * n})
    contexts = [[Retrieved(f"c{i}", "charging", f"Charger {i} takes {i % 7 + 2} hours.", 0.9)]
                for i in range(n)]
    return qa, contexts


def _provider(base_url: str, home: Path) -> OpenAIProvider:
    # The official client reads the key from the environment, as in production.
    os.environ.setdefault("OPENAI_API_KEY", "bench-key")
    return OpenAIProvider(Settings.from_env({
        "LLMOPS_PROVIDER": "openai", "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": base_url,
        "LLMOPS_HOME": str(home), "LLMOPS_OPENAI_MAX_RETRIES": "0"}))


def _engine(base_url: str, home: Path, n: int, concurrency: int, cache_name: str) -> float:
    """Wall seconds of one evaluate() over n rows (1 candidate), cache in home/cache_name."""
    qa, contexts = _qa(n)
    prompts = load_prompts(ROOT / "assets" / "prompts")[:1]
    cache = CallCache(home / cache_name)
    ctx = RunContext(_provider(base_url, home), Pricing.load(ROOT / "assets" / "pricing.yaml"),
                     cache, concurrency, {"data": "bench", "index": "bench"},
                     progress=lambda _: None)
    started = time.perf_counter()
    rows = evaluate(cross(prompts, ["gpt-4o-mini"]), qa, contexts, ctx, {"max_tokens": 32})
    elapsed = time.perf_counter() - started
    cache.close()
    assert len(rows) == n and rows["error"].isna().all(), rows["error"].dropna().head()
    return elapsed


def _sequential(base_url: str, home: Path, n: int) -> float:
    """Rows/s of a plain loop doing the same work per row: answer, then score (one call each)."""
    provider = _provider(base_url, home)
    prompt = load_prompts(ROOT / "assets" / "prompts")[0]
    params = chat_params(prompt, {"max_tokens": 32})
    qa, contexts = _qa(n)

    async def direct(fn, texts):
        return fn(texts)

    started = time.perf_counter()
    for row, ctx in zip(qa.itertuples(index=False), contexts, strict=True):
        answer = provider.chat(render(prompt, row.question, ctx), model="gpt-4o-mini", **params)
        scorers = Scorers(MicroBatcher(lambda t: direct(provider.embed, t), linger_s=0),
                          MicroBatcher(lambda t: direct(provider.moderate, t), linger_s=0))
        asyncio.run(score_row(RowInput(row.question, row.ground_truth, answer.text,
                                       [(c.doc_id, c.text) for c in ctx]), scorers))
    return n / (time.perf_counter() - started)


def _rss_child(n: int, base_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wall = _engine(base_url, Path(tmp), n, 64, "cache.sqlite")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(f"{peak} {wall}", flush=True)


def _peak_rss(n: int) -> tuple[float, float]:
    """(GiB, seconds) of an evaluation of n rows in a fresh process: its own peak RSS."""
    with FakeOpenAIServer(latency_s=0.002) as server:
        done = subprocess.run([sys.executable, "-m", "bench.engine", "--rss", str(n), server.base_url],
                              cwd=ROOT, capture_output=True, text=True, check=True)
    peak, wall = done.stdout.split()
    return int(peak) / 2**30, float(wall)


def _capped(server: FakeOpenAIServer, home: Path, n: int, concurrency: int, name: str,
            bound: float, routes: tuple[str, ...] = ("chat",)) -> dict:
    """One capped run: requests/s at the server over the whole run, as a share of the bound."""
    server.reset()  # also empties the bucket again
    wall = _engine(server.base_url, home, n, concurrency, name)
    counted = sum(server.counts[r] for r in routes) if routes != ("*",) else \
        sum(server.counts.values())
    refused = server.faults["429"]
    rps = counted / wall
    return {"bound_req_per_s": bound, "wall_s": round(wall, 2),
            "capped_req_per_s": round(rps, 2), "efficiency": round(rps / bound, 3),
            "chat_req_per_s": round(server.counts["chat"] / wall, 2),
            "all_req_per_s": round(sum(server.counts.values()) / wall, 1),
            "rows_per_s": round(n / wall, 1), "rejected_429": refused,
            "share_429": round(refused / max(1, refused + counted), 4)}


def run(quick: bool = False) -> dict:
    n, sequential_n, rss_n = (300, 10, 5_000) if quick else (2_000, 40, 100_000)
    out: dict = {"rows": n, "server_latency_s": LATENCY_S, "chat_cap_rps": CAP_RPS,
                 "bucket": "starts empty"}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        # A sequential loop sends at most 1/L = 5 chat requests/s: the cap never binds it.
        with FakeOpenAIServer(latency_s=LATENCY_S) as server:
            sequential = _sequential(server.base_url, home, sequential_n)
        with FakeOpenAIServer(latency_s=LATENCY_S, rate_limit_rps=CAP_RPS,
                              rate_limit_routes=("chat",), bucket_starts_empty=True) as server:
            for concurrency in (8, 16):
                bound = min(CAP_RPS, concurrency / LATENCY_S)
                out[f"c{concurrency}"] = _capped(server, home, n, concurrency,
                                                 f"cache-{concurrency}.sqlite", bound)
                out[f"c{concurrency}"]["speedup_vs_sequential"] = round(
                    n / out[f"c{concurrency}"]["wall_s"] / sequential, 1)
            server.reset()
            rerun = _engine(server.base_url, home, n, 16, "cache-16.sqlite")
            out["rerun_calls"] = sum(server.counts.values())
        with FakeOpenAIServer(latency_s=LATENCY_S, rate_limit_rps=CAP_RPS,
                              rate_limit_routes=("chat",), bucket_starts_empty=True,
                              rate_limit_headers=True) as server:
            out["c16_headers"] = _capped(server, home, n, 16, "cache-headers.sqlite", CAP_RPS)
        # One window for every route: scoring's batched calls share the cap with the answers.
        with FakeOpenAIServer(latency_s=LATENCY_S, rate_limit_rps=CAP_RPS,
                              bucket_starts_empty=True) as server:
            out["c16_one_window"] = _capped(server, home, n // 2 if not quick else n, 16,
                                            "cache-window.sqlite", CAP_RPS, routes=("*",))
    out["sequential_rows_per_s"] = round(sequential, 2)
    out["sequential_rows_measured"] = sequential_n
    out["rerun_wall_s"] = round(rerun, 3)
    out["rerun_wall_ratio"] = round(rerun / out["c16"]["wall_s"], 4)
    peak, wall = _peak_rss(rss_n)
    out["rss_rows"], out["rss_peak_gib"], out["rss_run_wall_s"] = rss_n, round(peak, 3), round(wall, 1)
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rss"]:
        _rss_child(int(sys.argv[2]), sys.argv[3])
