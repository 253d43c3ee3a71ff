"""Fine-tune assets: the training file (same prompt as evaluation) and the fine-tuned model."""

import dagster as dg
import pandas as pd

from llmops_pipelines import finetune
from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.errors import FineTuneError
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.rag_app import retrieve

GROUP = "finetune"


@dg.asset(group_name=GROUP)
def finetune_training_file(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                           curated_qa: pd.DataFrame, rag_index: dict) -> dg.Output[dict]:
    """Chat-format JSONL from the train split, rendered with the served prompt, validated."""
    settings = llmops.settings
    train = curated_qa[(curated_qa["split"] == "train") & curated_qa["ground_truth"].notna()]
    train = train.sort_values("qa_id")
    prompts = {p.name: p for p in llmops.prompts()}
    prompt = prompts.get(settings.finetune_prompt) or next(iter(prompts.values()))
    contexts = retrieve(llmops.provider, llmops.index(), train["question"].tolist(), settings.top_k)
    examples = finetune.training_examples(prompt, train["question"].tolist(),
                                          train["ground_truth"].tolist(), contexts)
    path = settings.path("finetune", "train.jsonl")
    data_hash = finetune.write_jsonl(examples, path)
    # Line-level problems fail here; too few examples only matters once a job would start.
    problems = finetune.validate_training_file(path, min_examples=0)
    if problems:
        raise FineTuneError("training file is invalid:\n" + "\n".join(problems[:20]))
    value = {"path": str(path), "examples": len(examples), "sha": data_hash,
             "prompt": prompt.name, "prompt_version": prompt.version,
             "index_version": rag_index["index_version"]}
    context.log.info(f"{len(examples)} training examples written to {path}")
    return dg.Output(value, metadata={**value, "path": dg.MetadataValue.path(str(path))})


@dg.asset(group_name=GROUP)
def finetuned_model(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                    finetune_training_file: dict) -> dg.Output[dict]:
    """A model fine-tuned on the training file; the same data and settings reuse the last one."""
    settings = llmops.settings
    if settings.finetune == "off":
        value = {"model_id": None, "skipped": "LLMOPS_FINETUNE=off"}
        return dg.Output(value, metadata={"skipped": value["skipped"]})
    problems = finetune.validate_training_file(finetune_training_file["path"])
    if problems:
        raise FineTuneError("not fine-tuning: " + "; ".join(problems))
    hyper = {"n_epochs": settings.finetune_epochs}
    key = content_hash(settings.provider, finetune_training_file["sha"],
                       settings.finetune_base_model, hyper, length=12)
    if settings.provider == "openai":
        job = finetune.RemoteFineTune(llmops.provider.client, settings.path("finetune", "remote"),
                                      log=context.log.info, poll_s=settings.finetune_poll_s)
        outcome = job.run(finetune_training_file["path"], base_model=settings.finetune_base_model,
                          hyperparameters=hyper, suffix="llmops", key=key)
        value = {"model_id": outcome.model_id, "backend": "openai", "job_id": outcome.job_id,
                 "reused": outcome.reused, "trained_tokens": outcome.trained_tokens}
    else:
        from llmops_pipelines.finetune_runner import train_local

        value = train_local(settings, finetune_training_file["path"], key, hyper,
                            log=context.log.info)
    value.update(base_model=settings.finetune_base_model, training_sha=finetune_training_file["sha"])
    return dg.Output(value, metadata={k: v for k, v in value.items()
                                      if isinstance(v, (str, int, float, bool))})
