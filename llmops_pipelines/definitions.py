"""The Dagster code location: builds Definitions and nothing else."""

import os

import dagster as dg

from llmops_pipelines.defs import (
    automation,
    conversations,
    curation,
    evaluation,
    finetune,
    ideation,
    monitoring,
    nightly,
    promotion,
    rag,
    reporting,
)
from llmops_pipelines.defs.evaluation_shards import evaluation_rows_asset
from llmops_pipelines.defs.executors import executor_for
from llmops_pipelines.defs.io import TablesIOManager
from llmops_pipelines.defs.resources import LlmopsResource, endpoint_keys_resource
from llmops_pipelines.defs.shard_io import ShardIOManagerResource

MODULES = [curation, conversations, ideation, rag, finetune, evaluation, nightly, promotion, monitoring,
           reporting]


def resources() -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManager
                        | dg.ConfigurableIOManagerFactory]:
    """The run's resources: the endpoints' keys (masked), settings and providers, the tables
    under LLMOPS_HOME that use them, and the evaluation shards' intermediate files."""
    keys = endpoint_keys_resource()
    llmops = LlmopsResource(endpoint_keys=keys)
    return {"llmops": llmops, "endpoint_keys": keys, "io_manager": TablesIOManager(llmops=llmops),
            "shard_io_manager": ShardIOManagerResource(llmops=llmops)}


defs = dg.Definitions(
    # evaluation_rows has a shard op per endpoint of the catalog, read now (a pool per op).
    assets=[*dg.load_assets_from_modules(MODULES), evaluation_rows_asset()],
    asset_checks=dg.load_asset_checks_from_modules(MODULES),
    resources=resources(),
    sensors=automation.sensors(),
    schedules=automation.schedules(),
    # In-process on a laptop: the multiprocess executor re-imports the code per step (48 s vs
    # 10 s here). The team profile: a step per Dask task, or per Kubernetes pod; read as the
    # code location loads, since every run of a deployment shares its executor.
    executor=executor_for(os.environ),
)
