"""Why rows were re-run: compared with the previous evaluation_rows, whose contexts changed.

The previous table is lineage (each row keeps the chunk ids it was answered from and the index
version), so the asset can say which rows were bought again because retrieval now returns other
text, and from which documents that text comes.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from llmops_pipelines import tables

COLUMNS = ["candidate_id", "qa_id", "context_ids", "context_doc_ids", "index_version"]


def previous_rows(path: tables.TablePath) -> pd.DataFrame | None:
    """The last evaluation_rows (only the lineage columns), or None before the first run."""
    if not tables.exists(path):
        return None
    try:
        return tables.read_table(path, columns=COLUMNS)
    except (OSError, ValueError, KeyError):
        return None  # an older schema or a half-written file: nothing to compare with


def previous_index_version(previous: pd.DataFrame | None) -> str | None:
    """The index version most of the previous rows were answered on (what older keys hold)."""
    if previous is None or previous.empty:
        return None
    return str(Counter(previous["index_version"]).most_common(1)[0][0])


def rerun_summary(previous: pd.DataFrame | None, rows: pd.DataFrame) -> str:
    """'N of M rows re-run because their contexts changed (documents: ...)', plus the rest.

    A row whose contexts changed has new messages, so it was answered and scored again (its
    answer may come from a call another asset made first under the same key, the playground's).
    """
    total = len(rows)
    asked = int((~rows["cached"].astype(bool)).sum())
    if previous is None:
        return f"{asked} of {total} rows answered (no previous evaluation to compare with)"
    before = {(r.candidate_id, r.qa_id): (list(r.context_ids), list(r.context_doc_ids))
              for r in previous.itertuples(index=False)}
    changed, new, other, documents = 0, 0, 0, set()
    for r in rows.itertuples(index=False):
        old = before.get((r.candidate_id, r.qa_id))
        ids, docs = list(r.context_ids), list(r.context_doc_ids)
        if old is None:
            new += 1
            continue
        if ids == old[0]:
            other += not r.cached
            continue
        changed += 1
        gone, came = set(old[0]) - set(ids), set(ids) - set(old[0])
        documents |= {d for c, d in zip(old[0], old[1], strict=True) if c in gone}
        documents |= {d for c, d in zip(ids, docs, strict=True) if c in came}
        if not gone and not came:
            documents |= set(docs)  # the same chunks in another order
    text = (f"{changed} of {total} rows re-run because their contexts changed (documents: "
            f"{', '.join(sorted(documents)) or 'none'})")
    if new:
        text += f"; {new} new rows (questions or candidates added)"
    if other:
        text += f"; {other} answered again with the same contexts (prompt, model or parameters)"
    return text
