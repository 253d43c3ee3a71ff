"""The Dagster code location: builds Definitions and nothing else."""

import dagster as dg

from llmops_pipelines.defs import (
    automation,
    curation,
    evaluation,
    finetune,
    ideation,
    monitoring,
    nightly,
    promotion,
    rag,
)
from llmops_pipelines.defs.io import TablesIOManager
from llmops_pipelines.defs.resources import LlmopsResource

MODULES = [curation, ideation, rag, finetune, evaluation, nightly, promotion, monitoring]

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(MODULES),
    asset_checks=dg.load_asset_checks_from_modules(MODULES),
    resources={"llmops": LlmopsResource(), "io_manager": TablesIOManager()},
    sensors=automation.sensors(),
    schedules=automation.schedules(),
    # In-process: the multiprocess executor re-imports the code per step (48 s vs 10 s here).
    executor=dg.in_process_executor,
)
