"""Traces end to end: `llmops serve` exporting over OTLP/HTTP to a real collector process, the
production log's stages_ms, and production_monitoring's p50/p95 per stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import openai
import pandas as pd

from llmops_pipelines.definitions import defs
from tests.integration.test_serving import (
    REPO,
    TOKEN,
    deploy,
    exchanges,
    free_port,
    metadata,
    monitor,
)
from tests.support.otlp_collector import read_spans

STAGES = ("lookup", "retrieve", "render", "chat")


def _start_collector(out: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.otlp_collector", str(port), str(out)],
                            cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "the collector exited"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return proc, port
        except OSError:
            assert time.monotonic() < deadline, "the collector never listened"
            time.sleep(0.1)


def _serve(log: Path) -> tuple[subprocess.Popen, str]:
    """`llmops serve` as a process (the pattern of test_serving's `served` fixture)."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "llmops_pipelines.cli", "serve",
                                   "--port", str(port)], cwd=REPO, env=dict(os.environ),
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return server, url
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


def test_served_requests_reach_an_otlp_collector(openai_env, isolated_home, tmp_path,
                                                 monkeypatch) -> None:
    spans_file = tmp_path / "spans.jsonl"
    collector, port = _start_collector(spans_file)
    server = None
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the shutdown flush sends
        monkeypatch.setenv("LLMOPS_SERVE_TOKEN", TOKEN)
        result = dg.materialize([*defs.assets, *defs.asset_checks],
                                selection=dg.AssetSelection.groups("curation", "rag"),
                                resources=defs.resources, instance=dg.DagsterInstance.ephemeral())
        assert result.success
        deploy(isolated_home, "grounded_concise")
        server, url = _serve(tmp_path / "serve.log")
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        questions = ["How do I clean the tent?", "Which fuel does the stove use?", "Hi?"]
        replies = [client.chat.completions.create(
            model="champion", messages=[{"role": "user", "content": q}]) for q in questions]
        assert all(r.choices[0].message.content for r in replies)
        # Stop the server (SIGTERM, as a supervisor does): its spans are flushed on the way out.
        server.terminate()
        assert server.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
        spans = read_spans(spans_file)
        # The collector also takes OTLP/JSON (hex ids), as some exporters send.
        export = {"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "json.span",
            "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": [{"key": "k", "value": {"intValue": "3"}}]}]}]}]}
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/traces", data=json.dumps(export).encode(),
            headers={"Content-Type": "application/json"}), timeout=10).close()
        [json_span] = [s for s in read_spans(spans_file) if s["name"] == "json.span"]
        assert json_span["trace_id"] == "ab" * 16 and json_span["attributes"] == {"k": 3}
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        collector.terminate()
        collector.wait(timeout=10)
    records = [r for r in exchanges(isolated_home) if r["type"] == "exchange"]
    assert len(records) == 3
    roots = {s["trace_id"]: s for s in spans if s["name"] == "llmops.request"}
    for record in records:
        root = roots[record["trace_id"]]  # every request's trace arrived
        children = [s for s in spans if s["parent_span_id"] == root["span_id"]]
        by_name = {s["name"]: (s["end_ns"] - s["start_ns"]) / 1e6 for s in children}
        assert set(STAGES) <= set(by_name), by_name
        root_ms = (root["end_ns"] - root["start_ns"]) / 1e6
        assert all(root["start_ns"] <= s["start_ns"] <= s["end_ns"] <= root["end_ns"]
                   for s in children)
        # The stages (lookup, retrieve, render, chat) cover the request: within 10 % of it.
        stage_sum = sum(by_name.values())
        assert 0.9 * root_ms <= stage_sum <= root_ms, (by_name, root_ms)
        # The log's stages_ms are the same durations the spans carry.
        for stage in STAGES:
            assert abs(record["stages_ms"][stage] - by_name[stage]) <= max(0.05 * by_name[stage], 1.0)
        chat = next(s for s in children if s["name"] == "chat")
        assert chat["attributes"]["gen_ai.usage.output_tokens"] > 0
        text = repr([s["attributes"] for s in spans if s["trace_id"] == record["trace_id"]])
        assert record["question"] not in text and record["answer"] not in text
        assert TOKEN not in text and "test-key-not-secret" not in text

    monitored = monitor()
    assert monitored.success
    meta = metadata(monitored)
    for stage in (*STAGES, "total"):
        assert meta[f"stage/{stage}/p95_ms"] >= meta[f"stage/{stage}/p50_ms"] > 0
    assert meta["stages_missing"] == 0 and "retrieve" in meta["stages"]
    scored = pd.read_parquet(isolated_home / "tables" / "production_monitoring.parquet")
    assert [json.loads(s)["chat"] for s in scored["stages_ms"]] == [
        r["stages_ms"]["chat"] for r in records]

