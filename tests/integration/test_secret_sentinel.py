"""Secrets never land anywhere: the whole lifecycle with sentinel secrets, then a grep of it all.

Sentinels: the API key (the test server accepts only it, so it is really sent), the serve token,
the alert webhook's secret path and token, and prompts that try `${env:OPENAI_API_KEY}`,
`${file:/etc/hostname}` and a file outside their folder. The lifecycle runs as `make demo` does
(`llmops init`, then `dagster asset materialize` in a persistent DAGSTER_HOME, so compute logs
are written), once with the prompts that try to read secrets (it may fail: whatever the error,
nothing may leak) and once without; then `llmops serve` answers, is rated and refuses a wrong
token, `production_monitoring` scores it, and both alert sensors post to the webhook.

0 hits are required in every file under LLMOPS_HOME and DAGSTER_HOME (Parquet decoded too),
in every log (this process, the server's, the CLI runs'), in what the OpenAI-compatible test
server received (every request, headers but Authorization, bodies) and in the alerts posted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import dagster as dg
import openai
import pyarrow.parquet as pq
import pytest

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.definitions import defs
from llmops_pipelines.defs import automation_alerts
from tests.integration.test_serving import free_port
from tests.support.openai_server import FakeOpenAIServer
from tests.support.webhook import serve_webhook

REPO = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:12]
KEY = f"sk-sentinel-key-{RUN}"
TOKEN = f"serve-sentinel-token-{RUN}"
HOOK_PATH = f"hook-sentinel-path-{RUN}"
HOOK_TOKEN = f"hook-sentinel-token-{RUN}"
FILE_SECRET = f"file-sentinel-{RUN}"
LEAKY = {  # prompt file -> the front-matter line that tries to read a secret
    "leaky_env.prompty": "max_tokens: ${env:OPENAI_API_KEY}",
    "leaky_hostname.prompty": "max_tokens: ${file:/etc/hostname}",
    "leaky_outside.prompty": "max_tokens: ${file:../../outside-secret.txt}",
}


def hostname() -> str | None:
    """/etc/hostname's value when it is distinctive enough to grep for (not 'localhost')."""
    try:
        value = Path("/etc/hostname").read_text().strip()
    except OSError:
        return None
    return value if len(value) >= 8 and value not in ("localhost",) else None


def sentinels() -> dict[str, str]:
    found = {"OPENAI_API_KEY": KEY, "LLMOPS_SERVE_TOKEN": TOKEN, "webhook path": HOOK_PATH,
             "webhook token": HOOK_TOKEN, "file outside the prompts": FILE_SECRET}
    if (name := hostname()) is not None:
        found["/etc/hostname"] = name
    return found


def leaky_prompt(line: str) -> str:
    base = (REPO / "assets" / "prompts" / "grounded_concise.prompty").read_text()
    return base.replace("name: grounded_concise", f"name: leaky_{uuid.uuid4().hex[:6]}") \
               .replace("    max_tokens: 96", f"    {line}")


def texts_of(path: Path) -> list[str]:
    """What a file holds, as text: raw bytes, and Parquet decoded (its pages are compressed)."""
    raw = path.read_bytes()
    out = [raw.decode("utf-8", "replace"), raw.decode("latin-1")]
    if path.suffix == ".parquet" and raw[:4] == b"PAR1":
        out.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
    return out


def hits(haystacks: dict[str, list[str]]) -> list[str]:
    return [f"{what} in {where}" for where, texts in haystacks.items()
            for what, value in sentinels().items() if any(value in t for t in texts)]


def cli_materialize(log: Path, selection: str) -> int:
    with log.open("a") as out:
        return subprocess.run([str(Path(sys.executable).with_name("dagster")), "asset",
                               "materialize", "-m", "llmops_pipelines.definitions",
                               "--select", selection], cwd=REPO, env=dict(os.environ),
                              stdout=out, stderr=subprocess.STDOUT, timeout=900).returncode


@pytest.fixture
def sentinel_env(isolated_home: Path, tmp_path: Path, monkeypatch) -> FakeOpenAIServer:
    server = FakeOpenAIServer(api_key=KEY, keep_raw=True).start()
    assets = tmp_path / "assets"
    shutil.copytree(REPO / "assets", assets)
    gates = (assets / "gates.yaml").read_text().replace("quality:               {min: 0.20}",
                                                        "quality:               {min: 0.05}")
    (assets / "gates.yaml").write_text(gates)
    (tmp_path / "outside-secret.txt").write_text(FILE_SECRET)
    for name, line in LEAKY.items():
        (assets / "prompts" / name).write_text(leaky_prompt(line))
    for name, value in {"LLMOPS_PROVIDER": "openai", "OPENAI_BASE_URL": server.base_url,
                        "OPENAI_API_KEY": KEY, "LLMOPS_OPENAI_MAX_RETRIES": "0",
                        "LLMOPS_FINETUNE_POLL_S": "0.01", "LLMOPS_ASSETS_DIR": str(assets),
                        "LLMOPS_SERVE_TOKEN": TOKEN}.items():
        monkeypatch.setenv(name, value)
    # DAGSTER_HOME is created by `llmops init`, as `make demo` does.
    shutil.rmtree(isolated_home / "dagster")
    yield server
    server.stop()


def test_no_secret_reaches_any_file_log_request_or_alert(sentinel_env, isolated_home, tmp_path,
                                                        monkeypatch, caplog, capfd) -> None:
    server = sentinel_env
    caplog.set_level(logging.DEBUG)
    cli_log, serve_log = tmp_path / "dagster-cli.log", tmp_path / "serve.log"
    assets = Path(os.environ["LLMOPS_ASSETS_DIR"])
    assert llmops_main(["init"]) == 0

    # 1. With the prompts that try to read secrets: refused, whatever asset loads them first.
    leaky_rc = cli_materialize(cli_log, "not key:nightly_reevaluation")
    for name in LEAKY:
        (assets / "prompts" / name).unlink()
    # 2. The lifecycle as `make demo` runs it: it promotes a champion.
    assert cli_materialize(cli_log, "not key:nightly_reevaluation") == 0, cli_log.read_text()[-3000:]
    assert (isolated_home / "registry.sqlite").exists()

    # 3. Served, rated, and a wrong token refused.
    port = free_port()
    with serve_log.open("w") as out:
        serving = subprocess.Popen([sys.executable, "-m", "llmops_pipelines.cli", "serve",
                                    "--port", str(port)], cwd=REPO, env=dict(os.environ),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert serving.poll() is None, serve_log.read_text()
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, serve_log.read_text()
                time.sleep(0.2)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        reply = client.chat.completions.create(
            model="champion", messages=[{"role": "user", "content": "How do I clean the tent?"}])
        client.post("/feedback", body={"id": reply.id, "rating": "down"}, cast_to=object)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN[::-1], max_retries=0) \
                .chat.completions.create(model="x", messages=[{"role": "user", "content": "q"}])
    finally:
        serving.terminate()
        serving.wait(timeout=30)

    # 4. Monitoring (its feedback check fails: 1 of 1 rated down), then both alert sensors.
    instance = dg.DagsterInstance.get()
    with serve_webhook() as (hook_url, hook):
        monkeypatch.setenv("LLMOPS_ALERT_WEBHOOK", f"{hook_url}/{HOOK_PATH}?token={HOOK_TOKEN}")
        monitored = dg.materialize([*defs.assets, *defs.asset_checks],
                                   selection=["production_monitoring"], resources=defs.resources,
                                   instance=instance, raise_on_error=False)
        assert monitored.success
        automation_alerts.check_alert_sensor(1).evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs))
        failed = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE]
        if failed:
            run = failed[-1]
            failure = next(e.dagster_event for e in instance.all_logs(run.run_id)
                           if e.dagster_event and e.dagster_event.event_type
                           == dg.DagsterEventType.RUN_FAILURE)
            automation_alerts.run_failure_alerts(1)(dg.build_run_status_sensor_context(
                sensor_name="run_failure_alerts", dagster_event=failure,
                dagster_instance=instance, dagster_run=run,
                repository_def=defs.get_repository_def()).for_run_failure())
        alerts = list(hook.received)
    assert alerts, "no alert reached the webhook: the webhook credentials were not exercised"
    assert (leaky_rc != 0) == bool(failed)

    # 5. The grep.
    captured = capfd.readouterr()
    haystacks: dict[str, list[str]] = {}
    for root in (isolated_home, Path(os.environ["DAGSTER_HOME"])):
        for path in root.rglob("*"):
            if path.is_file():
                haystacks[str(path)] = texts_of(path)
    assert any("compute_logs" in p for p in haystacks), "no compute log was written"
    haystacks["logs"] = [cli_log.read_text(), serve_log.read_text(), captured.out, captured.err,
                         "\n".join(r.getMessage() for r in caplog.records)]
    haystacks["test server requests"] = [
        *(headers + body.decode("utf-8", "replace") for _, headers, body in server.raw_requests),
        json.dumps(server.requests, default=str)]
    haystacks["alerts posted"] = [json.dumps(alerts, default=str)]
    assert len(haystacks) > 20 and server.raw_requests
    assert hits(haystacks) == []
