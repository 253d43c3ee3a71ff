"""Metric validity: planted errors in the project's own data, and how often each metric sees them.

Supported answers (context sentences and ground truths of datasets/) become labelled variants
(negation, number, entity, condition, unrelated sentence, harmful sentence, paraphrase); each
offline metric scores them, and the LLM judges too when LLMOPS_JUDGE_MODEL is set. The
Contoso manuals (../shared), when present, are a corpus nobody tuned the checks on. The
project corpus's record is kept as the last validity run (LLMOPS_HOME/validity/latest.json),
which the evaluation summary and the promotion evidence read.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

from llmops_pipelines.evaluation.judges import Judges
from llmops_pipelines.evaluation.metrics.groundedness import METHOD
from llmops_pipelines.evaluation.scoring import EVALUATOR_VERSION
from llmops_pipelines.evaluation.validity import record
from llmops_pipelines.evaluation.validity.corpus import (
    Source,
    document_sources,
    project_sources,
    qa_sources,
    read_docs,
)
from llmops_pipelines.evaluation.validity.judged import provider_judge_call
from llmops_pipelines.evaluation.validity.planting import CONTRADICTIONS
from llmops_pipelines.evaluation.validity.run import ValidityRun
from llmops_pipelines.evaluation.validity.run import run as run_validity
from llmops_pipelines.providers import make_provider
from llmops_pipelines.settings import Settings

CONTOSO = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "contoso-outdoors"
REPORTED = ("groundedness", "groundedness_embedding_only", "groundedness_judge", "token_f1",
            "answer_similarity", "quality", "quality_judge", "harm")


def contoso_sources(root: Path = CONTOSO) -> tuple[list[Source], list[str]]:
    """The Contoso manuals' statements and FAQ answers, and the product names of products.csv."""
    from llmops_pipelines.curation import faq

    docs = read_docs(root / "manuals")
    pairs = [{"id": f"{doc_id}-{n}", "question": p.question, "ground_truth": p.ground_truth or "",
              "source": doc_id}
             for doc_id, text in docs.items() for n, p in enumerate(faq.mine(text, doc_id))]
    with (root / "products.csv").open(encoding="utf-8") as handle:
        names = [row["name"] for row in csv.DictReader(handle)]
    return [*document_sources(docs), *qa_sources(pairs, docs)], names


def _figures(result: ValidityRun) -> dict[str, Any]:
    out: dict[str, Any] = {"variants": len(result.variants)}
    for row in result.metrics.itertuples():
        if row.metric not in REPORTED:
            continue
        out[row.metric] = {
            "false_alarm_rate": round(row.false_alarm_rate, 3), "miss_rate": round(row.miss_rate, 3),
            "contradiction_detection": round(row.contradiction_detection, 3),
            "score_gap": round(row.score_gap, 3), "auc": round(row.auc, 3),
            "per_kind": {k.kind: f"{k.flagged_rate:.3f} {k.rate_is} (n={k.n})"
                         for k in result.kinds[result.kinds["metric"] == row.metric].itertuples()}}
    return out


def run(quick: bool = False) -> dict:
    settings = Settings.from_env()
    provider = make_provider(settings)
    judges = call = None
    if settings.judge_model:
        judges = Judges.load(settings.assets_dir / "evaluators", settings.judge_model,
                             settings.judge_repeats)
        call = provider_judge_call(provider, settings.judge_model)
    per_kind = 5 if quick else 25
    sources = project_sources(settings.datasets_dir)
    if quick:
        sources = sources[::4]
    project = run_validity(sources, provider.embed, judges=judges, judge_call=call,
                           judge_per_kind=per_kind)
    saved = record.save(record.build(
        project.metrics, project.kinds, created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        evaluator_version=EVALUATOR_VERSION, groundedness_method=METHOD,
        corpus=str(settings.datasets_dir), embedding_model=provider.embedding_model,
        judge_model=settings.judge_model, contradiction_kinds=list(CONTRADICTIONS)),
        settings.path(*record.LATEST))
    out: dict[str, Any] = {"record": str(saved), "embedding_model": provider.embedding_model,
                           "judge_model": settings.judge_model or "none",
                           "project": _figures(project)}
    if (CONTOSO / "manuals").is_dir():
        sources, names = contoso_sources()
        if quick:
            sources = sources[::4]
        out["contoso"] = _figures(run_validity(sources, provider.embed, extra_entities=names,
                                               judges=judges, judge_call=call,
                                               judge_per_kind=per_kind))
    else:
        out["contoso"] = f"skipped: no corpus at {CONTOSO}"
    print(record.table(record.load(saved)))
    return out
