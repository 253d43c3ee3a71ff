"""`llmops serve` under bad requests: a body size limit (413), feedback only for served
exchanges (404 otherwise, nothing logged), and a clear error for a port out of range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.integration.test_serving import TOKEN, served  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024


@pytest.fixture
def small_body_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("LLMOPS_SERVE_MAX_BODY_BYTES", str(LIMIT))
    return LIMIT


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _log_lines(home: Path) -> list[dict]:
    path = home / "production" / "exchanges.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_body_over_the_limit_is_413_and_nothing_is_logged(small_body_limit, served,  # noqa: F811
                                                          isolated_home: Path) -> None:
    url, _ = served
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * (4 * LIMIT)}]}).encode()
    status, reply = _post(f"{url}/v1/chat/completions", huge)
    assert status == 413, reply
    assert "LLMOPS_SERVE_MAX_BODY_BYTES" in reply["error"]["message"]
    status, reply = _post(f"{url}/v1/feedback", json.dumps(
        {"id": "chatcmpl-x", "rating": "down", "comment": "y" * (4 * LIMIT)}).encode())
    assert status == 413, reply
    # A body under the limit is answered as usual.
    fits = json.dumps({"messages": [{"role": "user", "content": "How do I clean the tent? "
                                     + "please " * 1000}]}).encode()
    assert len(fits) < LIMIT
    status, reply = _post(f"{url}/v1/chat/completions", fits)
    assert status == 200, reply
    assert [r["type"] for r in _log_lines(isolated_home)] == ["exchange"]


def test_feedback_only_for_exchanges_that_were_served(served, isolated_home: Path) -> None:  # noqa: F811
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        client.post("/feedback", body={"id": "chatcmpl-" + "0" * 32, "rating": "down"},
                    cast_to=object)
    assert "was not served" in str(err.value)
    assert _log_lines(isolated_home) == []  # a made-up id cannot fail the feedback check
    reply = client.chat.completions.create(
        model="champion", messages=[{"role": "user", "content": "How do I clean the tent?"}])
    client.post("/feedback", body={"id": reply.id, "rating": "down"}, cast_to=object)
    assert [r["type"] for r in _log_lines(isolated_home)] == ["exchange", "feedback"]


def test_feedback_for_an_exchange_served_before_a_restart(served,  # noqa: F811
                                                          isolated_home: Path) -> None:
    # The log is the record of what was served: an id found there is accepted, whichever
    # process (or an earlier run of this one) served it.
    url, _ = served
    log = isolated_home / "production" / "exchanges.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    earlier = {"type": "exchange", "id": "chatcmpl-earlier", "at": 1.0, "question": "q",
               "answer": "a", "contexts": [], "model": "gpt-4o-mini"}
    with log.open("a") as f:
        f.write(json.dumps(earlier) + "\n")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
    client.post("/feedback", body={"id": "chatcmpl-earlier", "rating": "up"}, cast_to=object)
    assert [r["type"] for r in _log_lines(isolated_home)] == ["exchange", "feedback"]


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--port", "99999"], {}, "--port"),
    (["--port", "0"], {}, "--port"),
    ([], {"LLMOPS_SERVE_PORT": "99999"}, "LLMOPS_SERVE_PORT"),
])
def test_port_out_of_range_is_an_error_naming_it(isolated_home: Path, args: list[str],
                                                 env: dict[str, str], named: str) -> None:
    environ = {**os.environ, "LLMOPS_SERVE_TOKEN": TOKEN, **env}
    try:
        done = subprocess.run([sys.executable, "-m", "llmops_pipelines.cli", "serve", *args],
                              cwd=REPO, env=environ, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"llmops serve {args} kept running instead of refusing the port: "
                    f"{(exc.stdout or b'')[-300:]!r}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr and "1..65535" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
