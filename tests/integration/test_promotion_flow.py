"""Acceptance: gate checks in real Dagster, then `llmops rollback` and `llmops history`.

A gate stopping a candidate is a decision, not a failure: its check is red (with numbers the
UI can chart), the run succeeds, and `champion` reports "not promoted" without moving the alias.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.definitions import defs
from llmops_pipelines.promotion.registry import Registry
from tests.support.eval_tables import candidate_rows, write_evaluation

CHAMPION, WORSE, BETTER = "champ@gpt-4o-mini#1", "ungrounded@gpt-4o-mini#2", "better@gpt-4o-mini#3"


def promote_run() -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks],
                          selection=["promotion_decision", "champion"],
                          resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                          raise_on_error=False)


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def champion_id(home: Path) -> str | None:
    current = Registry(home / "registry.sqlite").get()
    return current.candidate_id if current else None


def test_worse_groundedness_blocked_better_promoted_rollback_history(isolated_home, capsys) -> None:
    champ = candidate_rows(CHAMPION, quality=0.50, groundedness=0.80, seed=1)
    write_evaluation(isolated_home, champ)
    first = promote_run()
    assert first.success
    assert champion_id(isolated_home) == CHAMPION
    assert all(c.passed for c in checks(first).values()) and len(checks(first)) == 6

    # Better on the primary metric (quality) but far less grounded on the same questions,
    # while still above the absolute groundedness threshold (0.30): only the paired test stops it.
    worse = candidate_rows(WORSE, quality=0.56, groundedness=0.45, seed=2)
    write_evaluation(isolated_home, champ, worse)
    blocked = promote_run()
    # Not a failed run: the red gate is the decision's evidence, not an error.
    assert blocked.success, [e.message for e in blocked.all_events if e.is_failure]
    gate = checks(blocked)["gate_groundedness"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert "groundedness -0.3" in gate.description
    assert "margin ±0: worse beyond the margin, FAIL" in gate.description
    numbers = {k: v.value for k, v in gate.metadata.items()}
    assert numbers["threshold"] == 0.3 and numbers["margin"] == 0.0
    assert numbers["ci_low"] < numbers["diff_vs_champion"] < numbers["ci_high"] < 0
    assert numbers["value"] < numbers["champion_value"]
    assert isinstance(gate.metadata["ci_high"], dg.FloatMetadataValue)
    assert checks(blocked)["gate_quality"].passed
    assert champion_id(isolated_home) == CHAMPION  # champion ran, and moved nothing
    kept = blocked.output_for_node("champion")
    assert kept["promoted"] is False and kept["changed"] is False
    assert kept["candidate_id"] == CHAMPION and kept["decided"] == WORSE
    assert "worse beyond the margin" in "; ".join(kept["reasons"])
    decision = json.loads((isolated_home / "tables" / "promotion_decision.json").read_text())
    assert decision["candidate_id"] == WORSE and decision["promote"] is False
    assert decision["gates"]["groundedness"]["ci"][1] < 0
    charted = blocked.asset_materializations_for_node("promotion_decision")[0].metadata
    for metric in ("quality", "groundedness", "harm_rate", "cost_per_1k_answers_usd",
                   "latency_ms_per_token"):
        assert isinstance(charted[f"champion/{metric}"], dg.FloatMetadataValue), metric
        assert isinstance(charted[f"challenger/{metric}"], dg.FloatMetadataValue), metric
    assert charted["challenger/groundedness"].value < charted["champion/groundedness"].value
    assert "NOT PROMOTED" in charted["evidence"].value

    better = candidate_rows(BETTER, quality=0.60, groundedness=0.85, seed=3)
    write_evaluation(isolated_home, champ, better)
    promoted = promote_run()
    assert promoted.success
    assert champion_id(isolated_home) == BETTER
    quality_gate = checks(promoted)["gate_quality"]
    assert quality_gate.passed and "better beyond the margin, pass" in quality_gate.description
    assert 0.05 < quality_gate.metadata["diff_vs_champion"].value < 0.15

    assert llmops_main(["rollback", "--reason", "users report French answers"]) == 0
    assert champion_id(isolated_home) == CHAMPION
    capsys.readouterr()

    assert llmops_main(["history", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["candidate_id"]) for e in events] == [
        ("rollback", CHAMPION), ("promote", BETTER), ("reject", WORSE), ("promote", CHAMPION)]
    rollback, promote_better, reject, _ = events
    assert rollback["reason"] == "users report French answers" and rollback["actor"]
    assert promote_better["actor"] == "dagster"
    assert promote_better["metrics"]["quality"]["diff_vs_champion"] > 0
    assert "groundedness" in reject["reason"] and "worse beyond the margin" in reject["reason"]
    assert llmops_main(["history"]) == 0
    text = capsys.readouterr().out
    assert "rollback" in text and "users report French answers" in text
