"""The nightly re-evaluation: fresh answers from the provider on the eval and test splits,
compared with the evaluation each candidate was judged by (llmops_pipelines/evaluation/drift.py)."""

import dataclasses
import json

import dagster as dg
import pandas as pd

from llmops_pipelines.automation.triggers import NIGHTLY_DATE_TAG
from llmops_pipelines.curation import data_version
from llmops_pipelines.defs.evaluation import (
    GROUP,
    _candidate_objects,
    _contexts,
    _run_context,
    chat_calls,
)
from llmops_pipelines.defs.metadata import markdown_table
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import BudgetExceededError, LlmopsError
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.evaluation.runner import evaluate
from llmops_pipelines.monitoring import drift
from llmops_pipelines.promotion.deploy import snapshot_prompt
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.promotion.paired_bootstrap import rows_frame
from llmops_pipelines.promotion.registry import Registry

CHECK = "no_provider_drift"
TABLE_COLUMNS = ["candidate_id", "split", "rows", "quality", "groundedness", "quality_diff",
                 "quality_ci_high", "groundedness_diff", "groundedness_ci_high", "baseline",
                 "drifted"]


def _questions(curated_qa: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    parts = [curated_qa[curated_qa["split"] == s].sort_values("qa_id") for s in drift.SPLITS]
    return pd.concat([p.head(limit) if limit else p for p in parts], ignore_index=True)


def _contenders(llmops: LlmopsResource, candidates: pd.DataFrame, evaluation_rows: pd.DataFrame,
                finetuned_model: dict, documents: pd.DataFrame,
                log: dg.DagsterLogManager) -> tuple[list[Candidate], dict]:
    """The current candidates plus the champion (from the registry) when it is not one of them."""
    objects = _candidate_objects(llmops, candidates, finetuned_model, documents, log)
    baselines = {(str(cid), "eval"): drift.Baseline("evaluation_rows", group)
                 for cid, group in evaluation_rows.groupby("candidate_id")}
    registry = Registry(llmops.settings.registry_path)
    champion = registry.get("champion")
    if champion is not None and champion.candidate_id not in set(candidates["candidate_id"]):
        try:
            prompt = snapshot_prompt(llmops.settings, champion)
        except LlmopsError as exc:  # the candidates still get their night; say why it is missing
            log.warning(f"champion {champion.candidate_id} not re-evaluated: {exc}")
            return objects, baselines
        served = Candidate(prompt, champion.model, json.loads(champion.params or "{}"))
        objects.append(served)
        stored = registry.rows(champion.deployment_id)
        if stored:  # keyed as tonight's rows will be: by the id the candidate computes
            baselines[(served.candidate_id, "eval")] = drift.Baseline(
                f"promotion {champion.deployment_id}", rows_frame(stored))
    return objects, baselines


@dg.asset(group_name=GROUP, check_specs=[dg.AssetCheckSpec(
    CHECK, asset="nightly_reevaluation", blocking=False,
    description="Tonight's fresh answers on the eval split are not significantly worse (paired "
                "bootstrap, promotion's confidence and margins) in quality or groundedness than "
                "the evaluation the candidate was selected by.")])
def nightly_reevaluation(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                         curated_documents: pd.DataFrame, curated_qa: pd.DataFrame,
                         rag_index: dict, candidates: pd.DataFrame, evaluation_rows: pd.DataFrame,
                         finetuned_model: dict):
    """The champion and every candidate answer the eval and test splits afresh (calls cached
    per night only): per candidate x split, metrics and their paired change since the baseline."""
    settings = llmops.settings
    date = drift.nightly_date(context.run.tags.get(NIGHTLY_DATE_TAG))
    qa = _questions(curated_qa, settings.eval_limit)
    if qa.empty:
        raise dg.Failure("the eval and test splits are empty: add Q&A pairs to LLMOPS_DATASETS_DIR")
    objects, baselines = _contenders(llmops, candidates, evaluation_rows, finetuned_model,
                                     curated_documents, context.log)
    history = drift.NightlyHistory(settings.tables_dir / "nightly")
    if (previous := history.previous(date)) is not None:
        night, rows = previous
        baselines.update({(str(cid), "test"): drift.Baseline(f"nightly {night}", group)
                          for cid, group in rows[rows["split"] == "test"].groupby("candidate_id")})
    contexts = _contexts(llmops, qa, objects)
    versions = {"data": data_version(curated_documents, curated_qa),
                "index": rag_index["index_version"]}
    cache = CallCache(settings.cache_path)
    ctx = dataclasses.replace(_run_context(settings, llmops, cache, versions, context.log,
                                           objects),
                              cache_salt=drift.cache_salt(date),
                              partial_path=settings.tables_dir / "nightly_reevaluation.partial.parquet")
    try:
        rows = evaluate(objects, qa, contexts, ctx, llmops.run_defaults())
    except BudgetExceededError as exc:
        raise dg.Failure(description=str(exc)) from exc
    finally:
        cache.close()
    rows["split"] = rows["qa_id"].map(dict(zip(qa["qa_id"], qa["split"], strict=True)))
    history.save(date, rows)
    gates = Gates.load(settings.assets_dir / "gates.yaml", settings.provider)
    table = drift.compare(rows, baselines, gates)
    table.insert(0, "nightly_date", date)
    yield dg.Output(table, metadata={
        "nightly_date": date, "rows": len(rows), "cached_rows": int(rows["cached"].sum()),
        "chat_calls": chat_calls(ctx),
        "table": dg.MetadataValue.md(markdown_table(table[TABLE_COLUMNS]))})
    failures = drift.drift_failures(table)
    # ERROR, not WARN: the whole paired CI lies below zero beyond promotion's margin, so the
    # served answers really got worse; non-blocking, since nothing downstream can be protected.
    yield dg.AssetCheckResult(
        check_name=CHECK, passed=not failures, severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(failures) or "no candidate is significantly worse on the eval split",
        metadata={"drifted": ", ".join(f.split(": ", 1)[0] for f in failures) or "none",
                  "nightly_date": date,
                  "eval_split": dg.MetadataValue.md(markdown_table(
                      table[table["split"] == "eval"][TABLE_COLUMNS]))})
