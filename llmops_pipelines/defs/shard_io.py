"""Where the evaluation's intermediate step outputs go: shard specs and shard row frames.

Not the asset IO manager (defs/io.py keys its files by asset key; these outputs have none). On
tables_root (LLMOPS_TABLES_URI, any fsspec URL, or LLMOPS_HOME/tables), never a process-local
temp dir, so a step on one worker reads what a step on another wrote. Keyed by run id, step key
and output name (and mapping key): two runs never share a file, and re-executing a failed run
from its failure reads the outputs its parent run's steps left.
"""


import json
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from llmops_pipelines.defs.resources import LlmopsResource

SHARDS_DIR = ".shards"


def _is_frame(context: dg.InputContext | dg.OutputContext) -> bool:
    output = context.upstream_output if isinstance(context, dg.InputContext) else context
    typing_type = output.dagster_type.typing_type if output is not None else None
    return isinstance(typing_type, type) and issubclass(typing_type, pd.DataFrame)


class ShardIOManager(dg.UPathIOManager):
    """DataFrames as Parquet, everything else as JSON, under <tables_root>/.shards/<run id>/."""

    def _get_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        # One format per declared output type: the reader knows the file before opening it.
        path = self._get_path_without_extension(context)
        return path.with_name(path.name + (".parquet" if _is_frame(context) else ".json"))

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, pd.DataFrame):
            with path.open("wb") as f:
                obj.to_parquet(f, index=False)
        else:
            path.write_text(json.dumps(obj, default=str), encoding="utf-8")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        if path.suffix == ".parquet":
            with path.open("rb") as f:
                return pd.read_parquet(f)
        return json.loads(path.read_text(encoding="utf-8"))


class ShardIOManagerResource(dg.ConfigurableIOManagerFactory):
    """The shard IO manager on the run's tables_root (read from the settings when a run starts)."""

    llmops: dg.ResourceDependency[LlmopsResource]

    def create_io_manager(self, context: dg.InitResourceContext) -> ShardIOManager:
        return ShardIOManager(base_path=self.llmops.settings.tables_root / SHARDS_DIR)
