"""The invariants curated tables must hold; the Dagster asset checks call these and nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from llmops_pipelines.curation import pii
from llmops_pipelines.curation.normalise import compare_key
from llmops_pipelines.curation.splits import SPLIT_NAMES, UNLABELED

EXAMPLES = 5


@dataclass(frozen=True)
class Outcome:
    """A check's verdict, a sentence saying why, and numbers for the UI."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _base(kind: pa.DataType) -> pa.DataType:
    # pandas' string dtype arrives as large_string: the same values as the declared string.
    return pa.string() if kind == pa.large_string() else kind


def schema_matches(frame: pd.DataFrame, schema: pa.Schema) -> Outcome:
    """Exactly the declared columns, in order, each of its declared type (all-null columns pass)."""
    if list(frame.columns) != schema.names:
        return Outcome(False, f"columns {list(frame.columns)} != declared {schema.names}")
    actual = pa.Schema.from_pandas(frame, preserve_index=False)
    wrong = [f"{f.name}: declared {f.type}, found {actual.field(f.name).type}" for f in schema
             if _base(actual.field(f.name).type) not in (f.type, pa.null())]
    if wrong:
        return Outcome(False, "; ".join(wrong))
    return Outcome(True, f"{len(schema)} columns as declared", {"columns": ", ".join(schema.names)})


def keys_valid(frame: pd.DataFrame, required: Iterable[str], unique: str) -> Outcome:
    """No null in the key fields and no id used twice."""
    nulls = {column: int(frame[column].isna().sum()) for column in required}
    dupes = frame.loc[frame[unique].duplicated(keep=False), unique].unique().tolist()
    problems = [f"{n} null {column}" for column, n in nulls.items() if n]
    if dupes:
        problems.append(f"{len(dupes)} {unique} values used twice, e.g. {dupes[:EXAMPLES]}")
    metadata = {"rows": len(frame), "duplicate_ids": len(dupes),
                **{f"null_{k}": v for k, v in nulls.items()}}
    return Outcome(not problems, "; ".join(problems) or f"{len(frame)} rows, keys complete and unique",
                   metadata)


def no_split_leakage(qa: pd.DataFrame, documents: pd.DataFrame) -> Outcome:
    """No document's questions in two splits, rows on their document's split, no repeated pair
    across splits, no synthetic row in test, only known split names."""
    labeled = qa[qa["split"] != UNLABELED]
    per_doc = labeled.dropna(subset=["doc_id"]).groupby("doc_id")["split"].nunique()
    doc_split = documents.set_index("doc_id")["split"]
    linked = labeled.dropna(subset=["doc_id"])
    off_doc = linked[linked["split"] != linked["doc_id"].map(doc_split)]
    pair = (labeled["question"].map(compare_key) + "\x1f"
            + labeled["ground_truth"].fillna("").map(compare_key))
    repeated = labeled.groupby(pair)["split"].nunique()
    found = {
        "documents_in_two_splits": per_doc[per_doc > 1].index.tolist(),
        "rows_off_their_document_split": off_doc["qa_id"].tolist(),
        "pairs_in_two_splits": [k.split("\x1f")[0] for k in repeated[repeated > 1].index],
        "synthetic_rows_in_test": qa.loc[(qa["origin"] == "synthetic") & (qa["split"] == "test"),
                                         "qa_id"].tolist(),
        "unknown_split_names": sorted(set(qa["split"]) - set(SPLIT_NAMES)),
    }
    problems = [f"{len(v)} {k.replace('_', ' ')}, e.g. {v[:EXAMPLES]}" for k, v in found.items() if v]
    metadata = {k: len(v) for k, v in found.items()}
    return Outcome(not problems, "; ".join(problems) or "no document, question or synthetic row leaks "
                   "across splits", metadata)


def enough_eval_rows(qa: pd.DataFrame, minimum: int) -> Outcome:
    """At least `minimum` eval questions with a ground truth, or the evaluation means little."""
    n = int(((qa["split"] == "eval") & qa["ground_truth"].notna()).sum())
    return Outcome(n >= minimum, f"{n} eval rows with a ground truth (minimum {minimum})",
                   {"eval_rows": n, "minimum": minimum})


def no_pii(tables: dict[str, pd.DataFrame], allow: Iterable[str] = ()) -> Outcome:
    """No email, phone, card, SSN or street address pattern left in any text column."""
    allow = tuple(allow)
    hits: dict[str, int] = {}
    examples: list[str] = []
    for name, frame in tables.items():
        for column in frame.columns:
            series = frame[column]
            if not (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)):
                continue
            for row, value in series.dropna().items():
                for kind, n in pii.find(str(value), allow).items():
                    hits[kind] = hits.get(kind, 0) + n
                    if len(examples) < EXAMPLES:
                        examples.append(f"{name}.{column}[{row}]: {kind}")
    if hits:
        return Outcome(False, f"PII left after scrubbing: {hits}; e.g. {examples}", hits)
    return Outcome(True, f"no PII pattern in {', '.join(tables)}")


def accounted(accounting: dict[str, int]) -> Outcome:
    """Every ingested unit is a document, a Q&A row or a reject: nothing silently dropped."""
    ok = accounting.get("unaccounted", 0) == 0
    return Outcome(ok, f"ingested {accounting.get('ingested', 0)} = {accounting.get('documents', 0)} "
                   f"documents + {accounting.get('qa', 0)} Q&A + {accounting.get('rejected', 0)} "
                   f"rejected" + ("" if ok else f" + {accounting.get('unaccounted')} unaccounted"),
                   dict(accounting))


def has_documents(documents: pd.DataFrame, folder: Any, accounting: dict[str, int],
                  rule_hits: dict[str, int]) -> Outcome:
    """At least one curated document; else the folder and its counts, before anything syncs."""
    n = len(documents)
    if n:
        return Outcome(True, f"{n} documents from {folder}", {"documents": n})
    hits = {rule: k for rule, k in rule_hits.items() if k}
    why = f": {hits}" if hits else ""
    return Outcome(False, f"0 documents curated from {folder} ({accounting.get('ingested', 0)} "
                   f"units ingested, {accounting.get('rejected', 0)} rejected{why}): check "
                   "LLMOPS_DATASETS_DIR; nothing downstream (the index) runs on an empty set",
                   {"documents": 0, **accounting})
