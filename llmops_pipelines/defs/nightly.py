"""The nightly re-evaluation: fresh answers from the provider on the eval and test splits,
compared with the evaluation each candidate was judged by (llmops_pipelines/evaluation/drift.py).

One daily partition per night (its key, YYYY-MM-DD in LLMOPS_TIMEZONE, is the night that salts
the call cache): the UI lists every night, and "Materialize all" asks which night instead of
paying for one silently. The schedule (defs/automation.py) materializes tonight's partition.
"""

import dataclasses
import json
import warnings

import dagster as dg
import pandas as pd

from llmops_pipelines.curation import data_version
from llmops_pipelines.defs.evaluation import (
    GROUP,
    _candidate_objects,
    _contexts,
    _run_context,
    chat_calls,
)
from llmops_pipelines.defs.metadata import markdown_table
from llmops_pipelines.defs.resources import LlmopsResource, automation_settings
from llmops_pipelines.errors import BudgetExceededError, LlmopsError, SettingsError
from llmops_pipelines.evaluation.cache import CallCache
from llmops_pipelines.evaluation.candidates import Candidate
from llmops_pipelines.evaluation.runner import evaluate
from llmops_pipelines.monitoring import drift
from llmops_pipelines.promotion.deploy import snapshot_prompt
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.promotion.paired_bootstrap import rows_frame
from llmops_pipelines.promotion.registry import Registry

CHECK = "no_provider_drift"
# The first night a partition exists for; tonight's (end_offset=1) is the newest.
FIRST_NIGHT = "2025-01-01"
TABLE_COLUMNS = ["candidate_id", "split", "rows", "quality", "groundedness", "quality_diff",
                 "quality_ci_high", "groundedness_diff", "groundedness_ci_high", "baseline",
                 "drifted"]


def nights(timezone: str | None = None) -> dg.DailyPartitionsDefinition:
    """One partition per night in LLMOPS_TIMEZONE (read when the code location loads), up to
    and including today's, so the schedule's run at 02:00 finds tonight's partition."""
    timezone = timezone or automation_settings().timezone
    try:
        return dg.DailyPartitionsDefinition(start_date=FIRST_NIGHT, timezone=timezone,
                                            end_offset=1)
    except Exception as exc:  # zoneinfo's error for an unknown zone, Dagster's for the rest
        raise SettingsError(f"LLMOPS_TIMEZONE={timezone!r}: {exc}") from exc


NIGHTS = nights()


def _night(context: dg.AssetExecutionContext) -> str:
    """The partition's night; one at a time, since each night salts the cache on its own."""
    keys = context.partition_keys
    if len(keys) != 1:
        raise dg.Failure(
            f"nightly_reevaluation re-evaluates one night per run, not {len(keys)} "
            f"({keys[0]}...{keys[-1]}): choose a single partition, e.g. tonight's "
            f"{NIGHTS.get_last_partition_key()}. Nothing was called.")
    return drift.nightly_date(keys[0])


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
    registry = Registry.from_settings(llmops.settings)
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


with warnings.catch_warnings():  # backfill_policy is beta in Dagster 1.13
    warnings.simplefilter("ignore", dg.BetaWarning)
    _nightly_asset = dg.asset(
        group_name=GROUP, partitions_def=NIGHTS,
        # Nights launched together (a backfill, "Materialize all" with a range) are one run,
        # which refuses them before any call instead of paying for each night.
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[dg.AssetCheckSpec(
            CHECK, asset="nightly_reevaluation", blocking=False,
            description="Tonight's fresh answers on the eval split are not significantly worse "
                        "(paired bootstrap, promotion's confidence and margins) in quality or "
                        "groundedness than the evaluation the candidate was selected by.")])


@_nightly_asset
def nightly_reevaluation(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                         curated_documents: pd.DataFrame, curated_qa: pd.DataFrame,
                         rag_index: dict, candidates: pd.DataFrame, evaluation_rows: pd.DataFrame,
                         finetuned_model: dict):
    """One partition per night: the champion and every candidate answer the eval and test
    splits afresh (calls cached per night only); per candidate x split, metrics and their
    paired change since the baseline. Calls the provider: pick one night."""
    date = _night(context)
    settings = llmops.settings
    qa = _questions(curated_qa, settings.eval_limit)
    if qa.empty:
        raise dg.Failure("the eval and test splits are empty: add Q&A pairs to LLMOPS_DATASETS_DIR")
    objects, baselines = _contenders(llmops, candidates, evaluation_rows, finetuned_model,
                                     curated_documents, context.log)
    history = drift.NightlyHistory(settings.tables_root / "nightly")
    if (previous := history.previous(date)) is not None:
        night, rows = previous
        baselines.update({(str(cid), "test"): drift.Baseline(f"nightly {night}", group)
                          for cid, group in rows[rows["split"] == "test"].groupby("candidate_id")})
    contexts = _contexts(llmops, qa, objects)
    versions = {"data": data_version(curated_documents, curated_qa),
                "index": rag_index["index_version"]}
    cache = CallCache.from_settings(settings)
    ctx = dataclasses.replace(_run_context(settings, llmops, cache, versions, context.log,
                                           objects),
                              cache_salt=drift.cache_salt(date),
                              partial_path=settings.tables_root / "nightly_reevaluation.partial.parquet")
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
