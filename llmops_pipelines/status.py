"""What `llmops status` reports: the champion and the latest evaluation per candidate."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.settings import Settings

METRICS = ("quality", "groundedness", "harm_rate", "cost_usd", "latency_ms_per_token", "coverage")


def _clean(value: Any) -> Any:
    # JSON has no NaN: an unscored metric is null, never a made-up number.
    return None if isinstance(value, float) and math.isnan(value) else value


def status(settings: Settings) -> dict[str, Any]:
    """The champion, each candidate's latest metrics, and the versions they were built from."""
    # Reads only: nothing is created, so a read-only (or never used) LLMOPS_HOME still reports.
    champion = Registry(settings.home / "registry.sqlite", read_only=True).get("champion")
    tables = settings.home / "tables"
    summary_path = tables / "evaluation_summary.parquet"
    decision_path = tables / "promotion_decision.json"
    candidates = []
    if summary_path.exists():
        for row in pd.read_parquet(summary_path).to_dict("records"):
            candidates.append({
                "id": row["candidate_id"], "prompt": row["prompt_name"], "model": row["model"],
                "metrics": {m: _clean(float(row[m])) for m in METRICS}, "rows": int(row["rows"]),
            })
    decision = json.loads(decision_path.read_text()) if decision_path.exists() else {}
    return {
        "champion": ({"id": champion.candidate_id, "deployment": champion.deployment_id,
                      "prompt": champion.prompt_name, "model": champion.model,
                      "since": champion.created_at} if champion else None),
        "candidates": candidates,
        "decision": {k: decision.get(k) for k in ("candidate_id", "promoted", "reasons")}
        if decision else None,
        "versions": decision.get("versions") or {"data": None, "index": None, "prompts": None},
    }


def render_table(report: dict[str, Any]) -> str:
    """A plain-text summary for terminals."""
    header = f"{'candidate':<58} {'quality':>7} {'ground':>7} {'harm':>6} {'cost $':>9} " \
             f"{'ms/tok':>7} {'cover':>6} {'rows':>5}"
    lines = [header, "-" * len(header)]
    for c in report["candidates"]:
        m = c["metrics"]

        def f(key: str, fmt: str, m: dict[str, Any] = m) -> str:
            return "n/a" if m[key] is None else format(m[key], fmt)

        mark = "*" if report["champion"] and report["champion"]["id"] == c["id"] else " "
        lines.append(f"{mark}{c['id'][:57]:<57} {f('quality', '.3f'):>7} "
                     f"{f('groundedness', '.3f'):>7} {f('harm_rate', '.3f'):>6} "
                     f"{f('cost_usd', '.5f'):>9} {f('latency_ms_per_token', '.1f'):>7} "
                     f"{f('coverage', '.2f'):>6} {c['rows']:>5}")
    if not report["candidates"]:
        lines.append("(no evaluation yet: run `make demo` or materialize evaluation_summary)")
    champion = report["champion"]
    lines.append("")
    lines.append(f"champion: {champion['id']} ({champion['deployment']})" if champion
                 else "champion: none")
    if report["decision"]:
        d = report["decision"]
        verdict = "PROMOTED" if d["promoted"] else "not promoted"
        lines.append(f"last decision: {d['candidate_id']} {verdict}: {'; '.join(d['reasons'])}")
    v = report["versions"]
    lines.append(f"versions: data {v['data']}  index {v['index']}  prompts {v['prompts']}")
    return "\n".join(lines)
