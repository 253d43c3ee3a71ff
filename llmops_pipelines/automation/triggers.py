"""What each trigger re-materializes, and when a grown train split calls for retraining."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmops_pipelines.finetune.policy import should_retrain

# The lifecycle in lineage order; every target list below is sorted by it.
LINEAGE = (
    "curated_documents", "curated_qa", "curation_rejects", "curated_conversations",
    "conversation_rejects", "rag_chunks", "rag_index", "retrieval_evaluation",
    "finetune_training_file", "finetuned_model", "candidates", "evaluation_rows",
    "conversation_evaluation", "evaluation_summary", "promotion_decision", "champion",
    "evaluation_report", "nightly_reevaluation",
)
# Asset groups the triggers draw from (sensor targets); names a code location lacks are dropped.
GROUPS = ("curation", "rag", "finetune", "evaluation", "promotion")
PROMOTION = ("promotion_decision", "champion")
# The report last: after a re-score it shows the new rows (and the champion the registry holds).
SCORING = ("evaluation_rows", "conversation_evaluation", "evaluation_summary", *PROMOTION,
           "evaluation_report")
EVALUATION = ("candidates", *SCORING)  # candidates = prompt versions x models
# The training file is rebuilt too (no model call): its drift is what the retraining sensor reads.
DATA = ("curated_documents", "curated_qa", "curation_rejects", "curated_conversations",
        "conversation_rejects", "rag_chunks", "rag_index", "retrieval_evaluation",
        "finetune_training_file", *SCORING)
RETRAIN = ("finetune_training_file", "finetuned_model", *EVALUATION)
# Fresh answers (call cache salted per night) from the champion and candidates on the eval and
# test splits, compared with their evaluation: drift on the provider's side. Upstream tables are
# loaded as they are (curation, index and fine-tune are not re-run); promotion is not touched.
NIGHTLY = ("nightly_reevaluation",)
# Each night is a partition of nightly_reevaluation (its key: YYYY-MM-DD); the tag repeats it
# on the run so runs can be filtered by night.
NIGHTLY_DATE_TAG = "llmops/nightly_date"
# production_monitoring's checks that a new fine-tune can fix: questions drifted away from the
# training data, users rate answers down, answers stray from the context. Latency, cost and
# harm failures alert (asset_check_alerts) but do not retrain.
MONITORING_ASSET = "production_monitoring"
RETRAIN_CHECKS = ("monitor_question_drift", "monitor_negative_feedback_rate", "monitor_groundedness")

# Each watched entry of LLMOPS_ASSETS_DIR -> the assets that read it. Only what reads a
# changed file re-runs; the content-keyed call cache makes unchanged candidates' rows free.
ASSET_FILE_TARGETS: dict[str, tuple[str, ...]] = {
    "prompts": EVALUATION,
    "evaluators": SCORING,      # judge rubrics score every row
    "pricing.yaml": SCORING,    # cost per row
    "gates.yaml": PROMOTION,
}
# Not watched: generators/ (the synthetic Q&A prompt) feeds curation only when
# LLMOPS_SYNTHETIC_QA is on; re-materialize curation by hand after editing it.


def in_lineage_order(names: Iterable[str]) -> list[str]:
    """Names sorted by their place in the lifecycle (unknown names last, alphabetically)."""
    rank = {name: i for i, name in enumerate(LINEAGE)}
    return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), n))


def targets_for_asset_files(changed: Iterable[str]) -> list[str]:
    """The assets that read any of the changed paths (relative to LLMOPS_ASSETS_DIR)."""
    wanted: set[str] = set()
    for path in changed:
        wanted.update(ASSET_FILE_TARGETS.get(path.split("/", 1)[0], ()))
    return in_lineage_order(wanted)


def split_rows(rows_per_split: Any, split: str = "train") -> int | None:
    """Rows in one split from curated_qa's `rows_per_split` metadata (None when absent)."""
    if not isinstance(rows_per_split, dict):
        return None
    value = rows_per_split.get(split, 0)
    return int(value) if isinstance(value, int | float) else None


def train_grew(trained_on: int | None, now: int | None, fraction: float) -> bool:
    """True when the train split grew by at least `fraction` since the model was trained."""
    if trained_on is None or now is None:
        return False
    if trained_on == 0:
        return now > 0
    return (now - trained_on) / trained_on >= fraction


def training_drift(metadata: dict[str, Any]) -> str | None:
    """Why the training file calls for a new job (the finetuned_model asset's own rule), or None."""
    share, gate = metadata.get("drift_share"), metadata.get("retrain_threshold")
    if not isinstance(share, int | float) or not isinstance(gate, int | float):
        return None
    if not should_retrain(float(share), float(gate)):
        return None
    changed = metadata.get("changed_examples")
    return (f"training file drifted: {changed} examples changed or added ({share:.1%}, "
            f"retrain share {gate:.0%})")


def run_tags(trigger: str, why: Iterable[str]) -> dict[str, str]:
    """Tags every automated run carries: the trigger and (shortened) what set it off."""
    text = ", ".join(why)
    return {"llmops/trigger": trigger, "llmops/why": text if len(text) <= 200 else text[:199] + "…"}
