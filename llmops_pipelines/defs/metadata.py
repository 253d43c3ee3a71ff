"""Small helpers that turn frames into Dagster metadata people can read in the UI."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow as pa


def markdown_table(frame: pd.DataFrame, max_chars: int = 80) -> str:
    """A GitHub markdown table; long cells are cut and pipes escaped so the UI stays readable."""
    if frame.empty:
        return "_empty_"

    def cell(value: object) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text[:max_chars] + "…" if len(text) > max_chars else text

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame.head(rows)))


def counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """A declared pyarrow schema as the column schema the Dagster UI shows on an asset."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])
