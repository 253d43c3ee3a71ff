"""Evaluation shards over processes: rows/s with 1, 2 and 4 shard workers against one endpoint.

What runs: the evaluation each shard step runs (`evaluate` on the shard's candidates x question
range, planned by `plan_shards`), one process per shard, as the multiprocess or Dask executor
runs one step per worker, but without Dagster's per-step start-up (re-import, resources): the
children import and plan first, then wait for one "go", so the clock measures the evaluation.
Each worker has its own AIMD limiter at concurrency c. The server answers after L seconds and
admits R chat requests/s (429 + Retry-After beyond, its bucket starting empty), so the bound
is min(R, workers x c / L) rows/s; the ratio says how much of it the shards reach together.
`python -m bench.scale --child URL CACHE START STOP C` is one shard worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.engine import ROOT, _provider, _qa
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import cross
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.evaluation.runner import RunContext, evaluate
from llmops_pipelines.evaluation.shards import plan_shards
from llmops_pipelines.prompts import load_prompts
from tests.support.openai_server import FakeOpenAIServer

LATENCY_S, CAP_RPS, CONCURRENCY = 0.2, 50.0, 8
WORKERS = (1, 2, 4)


def _child(base_url: str, cache_path: str, start: int, stop: int, concurrency: int) -> None:
    """One shard worker: ready, wait for "go" on stdin, evaluate its rows, print its clock."""
    qa, contexts = _qa(stop)
    home = Path(cache_path).parent
    cache = CallCache(Path(cache_path))
    ctx = RunContext(_provider(base_url, home), Pricing.load(ROOT / "assets" / "pricing.yaml"),
                     cache, concurrency, {"data": "bench", "index": "bench"},
                     progress=lambda _: None)
    candidates = cross(load_prompts(ROOT / "assets" / "prompts")[:1], ["gpt-4o-mini"])
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    rows = evaluate(candidates, qa.iloc[start:stop], contexts[start:stop], ctx, {"max_tokens": 32})
    ended = time.time()
    cache.close()
    errors = int(rows["error"].notna().sum())
    print(json.dumps({"rows": len(rows), "errors": errors, "started": started, "ended": ended}),
          flush=True)


def _run(server: FakeOpenAIServer, home: Path, rows: int, workers: int) -> dict:
    """All shard workers released at once; rows/s over the first start to the last end."""
    server.reset()
    specs, _ = plan_shards([("bench", "openai")], rows, "candidate",
                           max_questions=-(-rows // workers), endpoints={"openai"})
    cache = home / f"cache-{workers}.sqlite"  # shared by the shards, as the team's cache is
    procs = [subprocess.Popen([sys.executable, "-m", "bench.scale", "--child", server.base_url,
                               str(cache), str(s.start), str(s.stop), str(CONCURRENCY)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for s in specs]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    server.reset()  # the bucket starts empty when the shards start, not at import
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    done = [json.loads(proc.communicate()[0].splitlines()[-1]) for proc in procs]
    wall = max(d["ended"] for d in done) - min(d["started"] for d in done)
    answered = sum(d["rows"] for d in done)
    bound = min(CAP_RPS, workers * CONCURRENCY / LATENCY_S)
    return {"shards": len(specs), "rows": answered, "errors": sum(d["errors"] for d in done),
            "wall_s": round(wall, 2), "rows_per_s": round(answered / wall, 1),
            "bound_rows_per_s": bound, "ratio": round(answered / wall / bound, 3),
            "chat_calls": server.counts["chat"], "rejected_429": server.faults["429"]}


def run(quick: bool = False) -> dict:
    rows = 200 if quick else 600
    out: dict = {"what": "evaluate() per shard, one process per shard (no Dagster step start-up)",
                 "server_latency_s": LATENCY_S, "chat_cap_rps": CAP_RPS,
                 "concurrency_per_worker": CONCURRENCY, "rows": rows}
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(
            latency_s=LATENCY_S, rate_limit_rps=CAP_RPS, rate_limit_routes=("chat",),
            bucket_starts_empty=True) as server:
        for workers in WORKERS:
            out[f"workers_{workers}"] = _run(server, Path(tmp), rows, workers)
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        url, cache_path, start, stop, concurrency = sys.argv[2:7]
        _child(url, cache_path, int(start), int(stop), int(concurrency))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
