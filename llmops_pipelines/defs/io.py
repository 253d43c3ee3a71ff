"""Asset outputs as files under LLMOPS_HOME/tables: DataFrames as Parquet, the rest as JSON."""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.resources import LlmopsResource


def table_path(root: Path, asset_key: dg.AssetKey, suffix: str) -> Path:
    return root / f"{'__'.join(asset_key.path)}{suffix}"


def _atomic_write(path: Path, write: Any) -> None:
    # Readers (pandas, duckdb, `llmops status`) never see a half-written file.
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class TablesIOManager(dg.ConfigurableIOManager):
    """Users open the outputs with pandas/duckdb; a later run loads them back the same way."""

    # The run's settings come from the one resource that reads them (LLMOPS_HOME/tables).
    llmops: dg.ResourceDependency[LlmopsResource]

    @property
    def root(self) -> Path:
        return self.llmops.settings.tables_dir

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if isinstance(obj, pd.DataFrame):
            path = table_path(self.root, context.asset_key, ".parquet")
            _atomic_write(path, lambda p: obj.to_parquet(p, index=False))
        else:
            path = table_path(self.root, context.asset_key, ".json")
            text = json.dumps(obj, indent=2, default=str)
            _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        parquet = table_path(self.root, context.asset_key, ".parquet")
        if parquet.exists():
            return pd.read_parquet(parquet)
        path = table_path(self.root, context.asset_key, ".json")
        if not path.exists():
            raise dg.Failure(f"upstream asset {context.asset_key.to_user_string()} has no output "
                             f"at {path}: materialize it first")
        return json.loads(path.read_text(encoding="utf-8"))
