"""The Dagster UI in a real browser (Playwright driving Debian's chromium), as a user meets it.

`dagster dev` on 127.0.0.1 with a temporary DAGSTER_HOME, the pipeline pointed at the local
OpenAI-compatible test server. The browser may reach nothing but 127.0.0.1 (and file:// for the
report): every other request is refused and recorded. Screenshots go to .screenshots/.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from llmops_pipelines.definitions import defs, resources
from tests.conftest import REPO
from tests.integration.test_ui import graphql
from tests.support.dagster_dev import DagsterDev

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / ".screenshots"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="Debian's chromium is not installed (make install does it)")]
UPSTREAM = dg.AssetSelection.assets("evaluation_summary", "curation_rejects").upstream()
LATEST = """{ assetOrError(assetKey: {path: ["%s"]}) { ... on Asset {
  assetMaterializations(limit: 1) { runId timestamp } } } }"""


@pytest.fixture
def dagster_dev(openai_env: Any, isolated_home: Path, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The upstream assets materialized into the instance, then `dagster dev` serving it."""
    monkeypatch.setenv("LLMOPS_EVAL_LIMIT", "4")
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(defs.assets, selection=UPSTREAM, resources=resources(),
                                instance=instance)
        assert result.success
    dev = DagsterDev(dict(os.environ), tmp_path / "dagster-dev.log")
    try:
        dev.wait(lambda: _answers(dev.port), "dagster dev to serve the asset graph", 180)
        yield f"http://127.0.0.1:{dev.port}"
    finally:
        dev.stop()


def _answers(port: int) -> bool:
    try:
        return bool(graphql(port, "{ assetNodes { id } }")["data"]["assetNodes"])
    except (OSError, KeyError, TypeError):
        return False


def latest(base: str, asset: str) -> dict[str, Any] | None:
    port = int(base.rsplit(":", 1)[1])
    found = graphql(port, LATEST % asset)["data"]["assetOrError"]["assetMaterializations"]
    return found[0] if found else None


def run_status(base: str, run_id: str) -> str:
    port = int(base.rsplit(":", 1)[1])
    query = '{ runOrError(runId: "RUN") { ... on Run { status } } }'.replace("RUN", run_id)
    return graphql(port, query)["data"]["runOrError"]["status"]


RUNS = "{ runsOrError { ... on Runs { results { runId } } } }"


def launch(page: Any, base: str) -> None:
    """Click the asset page's Materialize button, as a user does, until a run is launched.

    """
    port = int(base.rsplit(":", 1)[1])
    before = len(graphql(port, RUNS)["data"]["runsOrError"]["results"])
    page.locator("button", has_text=re.compile(r"^\s*Materialize\s*$")).first.click()
    # The webserver asks the code server for the run's plan first: slow on a loaded machine.
    deadline = time.monotonic() + 240
    while len(graphql(port, RUNS)["data"]["runsOrError"]["results"]) == before:
        assert time.monotonic() < deadline, "clicking Materialize launched no run"
        page.wait_for_timeout(1000)  # not time.sleep: the browser's events need this thread


def wait_for_new(page: Any, base: str, asset: str, before: dict[str, Any] | None) -> None:
    deadline = time.monotonic() + 180
    port = int(base.rsplit(":", 1)[1])
    while (now := latest(base, asset)) == before:
        runs = graphql(port, "{ runsOrError(limit: 3) { ... on Runs { results { runId status "
                             "assetSelection { path } } } } }")
        assert time.monotonic() < deadline, f"the launched run did not materialize {asset}: {runs}"
        page.wait_for_timeout(1000)
    assert now is not None and run_status(base, now["runId"]) in ("SUCCESS", "STARTED")


class Browser:
    """One chromium page that may reach only the local UI (and local files)."""

    def __init__(self, pw: Any, base: str) -> None:
        self.base = base
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox"])
        self.context = self.browser.new_context(viewport={"width": 1700, "height": 1000})
        self.refused: list[str] = []
        # Only what is not local is refused. Route handlers run in this Python thread: waits
        # go through the page (wait_for_timeout), never time.sleep, or every request stalls.
        self.context.route(self._foreign, self._refuse)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self._greeted = False
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _foreign(self, url: str) -> bool:
        return not url.startswith((self.base, "file://", "data:", "blob:"))

    def _refuse(self, route: Any) -> None:
        self.refused.append(route.request.url)
        route.abort()

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path, wait_until="networkidle", timeout=60_000)
        if not self._greeted:  # the first visit's newsletter dialog opens late over the page
            skip = self.page.get_by_role("button", name="Skip")
            try:
                skip.wait_for(timeout=15_000)
                skip.click()
            except playwright.Error:
                pass
            self._greeted = True
        return self.page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)

    def close(self) -> None:
        self.browser.close()


def test_lineage_launch_and_metrics_in_the_browser(dagster_dev: str) -> None:
    base = dagster_dev
    with playwright.sync_playwright() as pw:
        ui = Browser(pw, base)
        started = time.monotonic()
        try:
            page = ui.open("/asset-groups")
            for group in ("curation", "rag", "finetune", "evaluation", "promotion"):
                page.get_by_text(group, exact=True).last.wait_for(timeout=60_000)
            ui.shot("1-lineage")

            # Launch from the UI: the report's Materialize button (its upstream is built).
            page = ui.open("/assets/evaluation_report")
            launch(page, base)
            ui.shot("2-report-launched")
            wait_for_new(page, base, "evaluation_report", None)
            print(f"report materialized at {time.monotonic() - started:.0f}s")

            page = ui.open("/assets/evaluation_summary")
            page.get_by_text("by_prompt", exact=True).first.wait_for(timeout=60_000)
            ui.shot("3-evaluation-summary")
            # The Plots view charts the numeric metadata (each candidate's metrics).
            page.get_by_role("button", name=re.compile("Plots")).first.click()
            page.get_by_text(re.compile(r"/quality$")).first.wait_for(timeout=60_000)
            assert page.locator("canvas, svg.recharts-surface").count() >= 1
            ui.shot("4-evaluation-summary-plots")
            assert not ui.errors, ui.errors

            # The report, opened from disk with no network.
            report = Path(os.environ["LLMOPS_HOME"]) / "reports" / "evaluation_report.html"
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(report.as_uri(), wait_until="load")
            assert page.locator("#metrics svg").count() >= 1
            assert page.locator("svg").count() >= 3
            rows = page.locator("#grid-table tr.q")
            assert rows.count() == 4  # LLMOPS_EVAL_LIMIT questions, one row each
            page.locator("#only-failures").check()
            shown = page.locator("#grid-table tr.q:visible").count()
            assert shown == sum(r.get_attribute("data-failure") == "1" for r in rows.all())
            ui.shot("5-report")
            assert not console and not ui.errors, (console, ui.errors)
            assert not ui.refused, ui.refused  # nothing but 127.0.0.1 and the file was asked for
        finally:
            ui.close()
