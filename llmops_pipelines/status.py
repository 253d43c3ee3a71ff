"""What `llmops status` reports: the champion, the latest evaluation per candidate, side by side."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from llmops_pipelines import tables
from llmops_pipelines.evaluation import side_by_side
from llmops_pipelines.promotion.registry import Registry
from llmops_pipelines.settings import Settings

METRICS = ("quality", "groundedness", "harm_rate", "cost_usd", "latency_ms_per_token", "coverage")


def _clean(value: Any) -> Any:
    # JSON has no NaN: an unscored metric is null, never a made-up number.
    return None if isinstance(value, float) and math.isnan(value) else value


def status(settings: Settings) -> dict[str, Any]:
    """The champion, each candidate's latest metrics, and the versions they were built from."""
    # Reads only: nothing is created, so a read-only (or never used) LLMOPS_HOME still reports.
    champion = Registry.from_settings(settings, read_only=True).get("champion")
    root = settings.tables_root  # LLMOPS_TABLES_URI or LLMOPS_HOME/tables
    summary_path = root / "evaluation_summary.parquet"
    decision_path = root / "promotion_decision.json"
    candidates = []
    summary = tables.read_table(summary_path) if tables.exists(summary_path) else pd.DataFrame()
    if not summary.empty:
        for row in summary.to_dict("records"):
            candidates.append({
                "id": row["candidate_id"], "prompt": row["prompt_name"], "model": row["model"],
                "metrics": {m: _clean(float(row[m])) for m in METRICS}, "rows": int(row["rows"]),
            })
    decision = tables.read_json(decision_path) if tables.exists(decision_path) else {}
    return {
        "champion": ({"id": champion.candidate_id, "deployment": champion.deployment_id,
                      "prompt": champion.prompt_name, "model": champion.model,
                      "since": champion.created_at} if champion else None),
        "candidates": candidates,
        # Which model is best for each prompt, at what cost and latency (NaN -> null).
        "side_by_side": side_by_side.records(side_by_side.by_prompt(summary)),
        "by_model": side_by_side.records(side_by_side.by_model(summary)),
        "decision": {k: decision.get(k) for k in ("candidate_id", "promoted", "reasons")}
        if decision else None,
        "versions": decision.get("versions") or {"data": None, "index": None, "prompts": None},
    }


# The side-by-side table's metric columns: (record key, header, width).
_TABLE_METRICS = (("quality", "quality", 7), ("groundedness", "ground", 7), ("harm_rate", "harm", 6),
                  ("cost_per_1k_answers_usd", "$/1k ans", 9), ("latency_ms_per_token", "ms/tok", 7),
                  ("coverage", "cover", 6), ("rows", "rows", 5))


def _side_by_side_lines(rows: list[dict[str, Any]], champion_id: str | None) -> list[str]:
    """A header line per prompt, then its models best first; `*` marks the champion."""
    # Widths follow the data: an "endpoint/model#hash" label is never cut short.
    model_width = max([len("model"), *(len(r["model"]) for r in rows)])
    endpoint_width = max([len("endpoint"), *(len(r["endpoint"] or "n/a") for r in rows)])
    metrics = " ".join(f"{title:>{width}}" for _, title, width in _TABLE_METRICS)
    header = f"  {'#':>2} {'model':<{model_width}} {'endpoint':<{endpoint_width}} {metrics}  candidate"
    lines = [header, "-" * len(header)]
    prompt = None
    for r in rows:
        if r["prompt"] != prompt:
            prompt = r["prompt"]
            lines.append(f"prompt {prompt}")
        mark = "*" if r["candidate_id"] == champion_id else " "
        values = " ".join(f"{side_by_side.format_cell(r[key], key):>{width}}"
                          for key, _, width in _TABLE_METRICS)
        lines.append(f"{mark} {r['rank']:>2} {r['model']:<{model_width}} "
                     f"{side_by_side.format_cell(r['endpoint']):<{endpoint_width}} {values}  "
                     f"{r['candidate_id']}")
    return lines


def render_table(report: dict[str, Any]) -> str:
    """A plain-text summary for terminals: the side-by-side per prompt, then the champion."""
    champion_id = report["champion"]["id"] if report["champion"] else None
    rows = report.get("side_by_side") or []
    lines = _side_by_side_lines(rows, champion_id) if rows else \
        ["(no evaluation yet: run `make demo` or materialize evaluation_summary)"]
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
