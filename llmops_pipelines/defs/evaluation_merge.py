"""The fan-in of evaluation_rows: the shards' rows in plan order, with today's metadata."""


import dagster as dg
import pandas as pd

from llmops_pipelines.defs import metadata as meta
from llmops_pipelines.defs.evaluation import PARTIAL
from llmops_pipelines.defs.metadata import column_schema
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.evaluation import changes
from llmops_pipelines.evaluation.shards import ShardSpec
from llmops_pipelines.schemas import EVALUATION_ROWS, conform
from llmops_pipelines.settings import Settings

SHARD_COLUMNS = [("shard", "string"), ("candidates", "int"), ("questions", "int"), ("rows", "int"),
                 ("chat_calls", "int"), ("worker", "string"), ("pid", "int"),
                 ("seconds", "float")]


def ordered(frames: list[pd.DataFrame], specs: list[ShardSpec],
            candidate_order: list[str]) -> pd.DataFrame:
    """The rows one `evaluate` over everything returns: candidates in order, questions by qa_id.

    Sorted rather than trusted to the fan-in's order, which Dagster does not promise.
    """
    rows = pd.concat(frames, ignore_index=True)
    expected = sum(s.rows for s in specs)
    if len(rows) != expected:
        raise dg.Failure(f"the shards returned {len(rows)} rows, the plan has {expected}")
    rank = {c: i for i, c in enumerate(candidate_order)}
    key = pd.DataFrame({"c": rows["candidate_id"].map(rank), "q": rows["qa_id"].astype(str)})
    return rows.loc[key.sort_values(["c", "q"], kind="stable").index].reset_index(drop=True)


def merged_endpoints(stats: list[dict], rows: pd.DataFrame) -> dict[str, dict]:
    """Each endpoint's calls summed over shards; candidates and dollars from the merged rows."""
    out: dict[str, dict] = {}
    for shard in stats:
        for name, entry in shard["endpoints"].items():
            seen = out.setdefault(name, {**entry, "chat_calls": 0, "peak_in_flight": None})
            seen["chat_calls"] += int(entry["chat_calls"])
            if entry.get("peak_in_flight") is not None:  # the local model's serialisation
                seen["peak_in_flight"] = max(seen["peak_in_flight"] or 0, entry["peak_in_flight"])
    for name, entry in out.items():
        mine = rows[rows["endpoint"] == name]
        entry["candidates"] = int(mine["candidate_id"].nunique())
        entry["cost_usd"] = round(float(mine["cost_usd"].sum()), 8)
    return out


def shards_table(stats: list[dict]) -> dg.MetadataValue:
    """Per shard: what it evaluated, the chat calls it made, where and how long it ran."""
    schema = dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in SHARD_COLUMNS])
    return dg.MetadataValue.table([dg.TableRecord({n: s.get(n) for n, _ in SHARD_COLUMNS})
                                   for s in stats], schema)


def _clear_partials(settings: Settings) -> None:
    # A finished run supersedes what an earlier, stopped one kept (one file, or one per shard).
    for path in [settings.tables_root / PARTIAL,
                 *settings.tables_root.glob("evaluation_rows.partial.*.parquet")]:
        path.unlink(missing_ok=True)


def merge_shards(outputs: list[str]) -> dg.OpDefinition:
    """The merge op, with one collected rows and stats input per shard op."""
    ins = {"plan": dg.In(list), **{f"{kind}_{name}": dg.In() for name in outputs
                                  for kind in ("rows", "stats")}}

    @dg.op(name="merge_evaluation_shards", ins=ins)
    def merge(context: dg.OpExecutionContext, llmops: LlmopsResource, plan: list,
              **collected) -> dg.Output[pd.DataFrame]:
        """Concatenate the shards' rows in plan order; metadata as one evaluation step gave."""
        settings = llmops.settings
        specs = [ShardSpec.from_dict(d) for d in plan]
        stats = sorted((s for name in outputs for s in collected[f"stats_{name}"]),
                       key=lambda s: s["index"])
        if [s["shard"] for s in stats] != [s.key for s in specs]:
            raise dg.Failure(f"shards {[s.key for s in specs]} planned, "
                             f"{[s['shard'] for s in stats]} finished")
        order = list(dict.fromkeys(c for s in specs for c in s.candidate_ids))
        rows = ordered([f for name in outputs for f in collected[f"rows_{name}"]], specs, order)
        rows = conform(rows, EVALUATION_ROWS, name="evaluation_rows")
        previous = changes.previous_rows(settings.tables_root / "evaluation_rows.parquet")
        _clear_partials(settings)
        reruns = changes.rerun_summary(previous, rows)
        context.log.info(reruns)
        versions = stats[0]["versions"] if stats else {}
        return dg.Output(rows, metadata={
            "reruns": reruns, "experiment": llmops.lineup.experiment.name,
            "dagster/row_count": len(rows),
            "dagster/column_schema": column_schema(EVALUATION_ROWS),
            "errors": int(rows["error"].notna().sum()),
            "cached_rows": int(rows["cached"].sum()),
            "chat_calls": sum(int(s["chat_calls"]) for s in stats),
            "endpoints": dg.MetadataValue.json(merged_endpoints(stats, rows)),
            # What this run paid vs what the cached rows cost when first made (answers + judges).
            **meta.spend(rows),
            "judge_cost_usd": meta.rounded(float(rows["judge_cost_usd"].sum())) or 0.0,
            "judge_model": settings.judge_model or "none", **versions,
            "preview": meta.rows_preview(rows, meta.candidate_labels(rows)),
            "shards": shards_table(stats),
        })

    return merge
