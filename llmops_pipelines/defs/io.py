"""Asset outputs as tables under settings.tables_root (LLMOPS_HOME/tables, or any fsspec URL from
LLMOPS_TABLES_URI): DataFrames as Parquet, the rest as JSON."""

from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from llmops_pipelines import tables
from llmops_pipelines.defs.resources import LlmopsResource


def table_path(root: tables.TablePath, asset_key: dg.AssetKey, suffix: str) -> tables.TablePath:
    return root / f"{'__'.join(asset_key.path)}{suffix}"


class TablesIOManager(dg.ConfigurableIOManager):
    """Users open the outputs with pandas/duckdb; a later run loads them back the same way."""

    # The run's settings come from the one resource that reads them (LLMOPS_TABLES_URI).
    llmops: dg.ResourceDependency[LlmopsResource]

    @property
    def root(self) -> UPath:
        return self.llmops.settings.tables_root

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        # Local: a temporary file renamed over the target; object stores: one put per object.
        # Either way no reader ever sees half a table.
        if isinstance(obj, pd.DataFrame):
            path = table_path(self.root, context.asset_key, ".parquet")
            tables.write_table(path, obj)
        else:
            path = table_path(self.root, context.asset_key, ".json")
            tables.write_json(path, obj)
        # The URI may carry credentials (user:password@, ?token=): metadata is shown to everyone.
        context.add_output_metadata({"path": dg.MetadataValue.path(tables.masked(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        parquet = table_path(self.root, context.asset_key, ".parquet")
        if tables.exists(parquet):
            return tables.read_table(parquet)
        path = table_path(self.root, context.asset_key, ".json")
        if not tables.exists(path):
            raise dg.Failure(f"upstream asset {context.asset_key.to_user_string()} has no output "
                             f"at {tables.masked(path)}: materialize it first")
        return tables.read_json(path)
