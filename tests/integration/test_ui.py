"""`make ui`'s server: dagster dev on 127.0.0.1 serves the asset graph, one group per stage."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUERY = "{ assetNodes { assetKey { path } groupName } }"
STAGES = {"curation", "ideation", "rag", "finetune", "evaluation", "promotion", "monitoring"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                     data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_dagster_dev_serves_one_group_per_stage(isolated_home) -> None:
    port = free_port()
    dagster = str(Path(sys.executable).parent / "dagster")
    # Its own session, so the webserver and the daemon it spawns stop together.
    process = subprocess.Popen([dagster, "dev", "-h", "127.0.0.1", "-p", str(port),
                                "-m", "llmops_pipelines.definitions"],
                               cwd=REPO, env=dict(os.environ), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, nodes = time.monotonic() + 120, None
        while time.monotonic() < deadline and nodes is None:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                nodes = graphql(port, QUERY)["data"]["assetNodes"]
            except (OSError, KeyError, TypeError):
                time.sleep(1)
        assert nodes, "dagster dev did not answer within 120 s"
        groups = {node["groupName"] for node in nodes}
        assert groups == STAGES
        keys = {node["assetKey"]["path"][-1] for node in nodes}
        assert {"curated_documents", "rag_index", "finetuned_model", "evaluation_rows",
                "promotion_decision"} <= keys
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
