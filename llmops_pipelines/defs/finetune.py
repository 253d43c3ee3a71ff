"""Fine-tune assets: the training file (same prompt as evaluation) and the fine-tuned model."""

from typing import Any

import dagster as dg
import pandas as pd

from llmops_pipelines.defs.resources import LlmopsResource
from llmops_pipelines.finetune import policy, training_file
from llmops_pipelines.finetune.remote import RemoteFineTune, missing_finetune_api
from llmops_pipelines.finetune.tokens import chat_token_counter
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.providers.openai_provider import OpenAIProvider
from llmops_pipelines.rag.app import retrieve
from llmops_pipelines.settings import Settings

GROUP = "finetune"


def _spec_and_counter(
        settings: Settings) -> tuple[training_file.TrainingSpec, training_file.TokenCounter]:
    spec = training_file.training_spec(settings.assets_dir / "pricing.yaml",
                                       settings.finetune_base_model)
    return spec, chat_token_counter(settings.provider, settings.finetune_base_model)


@dg.asset(group_name=GROUP)
def finetune_training_file(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                           curated_qa: pd.DataFrame, rag_index: dict) -> dg.Output[dict]:
    """Chat-format JSONL from the train split, rendered with the served prompt, validated."""
    settings = llmops.settings
    train = curated_qa[(curated_qa["split"] == "train") & curated_qa["ground_truth"].notna()]
    train = train.sort_values("qa_id")
    prompts = {p.name: p for p in llmops.prompts()}
    prompt = prompts.get(settings.finetune_prompt) or next(iter(prompts.values()))
    contexts = retrieve(llmops.embedder, llmops.index(), train["question"].tolist(), settings.top_k,
                        mode=settings.retrieval)
    examples = training_file.training_examples(prompt, train["question"].tolist(),
                                          train["ground_truth"].tolist(), contexts)
    path = settings.path("finetune", "train.jsonl")
    data_hash = training_file.write_jsonl(examples, path)
    spec, count = _spec_and_counter(settings)
    # Line-level problems fail here; too few examples only matters once a job would start.
    report = training_file.validate_training_file(path, min_examples=0, count_tokens=count,
                                             max_tokens=spec.max_example_tokens)
    report.raise_if_invalid()
    for warning in report.over_limit:
        context.log.warning(warning)
    value = {"path": str(path), "sha": data_hash, "prompt": prompt.name,
             "prompt_version": prompt.version, "index_version": rag_index["index_version"],
             "base_model": spec.base_model, **report.summary(), **_drift(settings, path)}
    context.log.info(f"{len(examples)} training examples ({report.total_tokens} "
                     f"{spec.base_model} tokens) written to {path}")
    return dg.Output(value, metadata={**value, "path": dg.MetadataValue.path(str(path))})


def _drift(settings: Settings, path: Any) -> dict[str, Any]:
    """How far the file moved from the current model's examples, and the share that retrains."""
    gate = policy.threshold(settings.provider, settings.finetune_retrain_share,
                            settings.retrain_growth)
    record = policy.load_record(settings.path("finetune", policy.RECORD).parent)
    if record is None:
        return {"retrain_threshold": gate}
    moved = policy.drift(policy.example_hashes(path), record["examples"])
    return {"drift_share": round(moved.share, 6), "changed_examples": moved.changed,
            "retrain_threshold": gate}


@dg.asset(group_name=GROUP)
def finetuned_model(context: dg.AssetExecutionContext, llmops: LlmopsResource,
                    finetune_training_file: dict) -> dg.Output[dict]:
    """A model fine-tuned on the training file; the same data and settings reuse the last one."""
    settings = llmops.settings
    if settings.finetune == "off":
        return _skipped("LLMOPS_FINETUNE=off")
    client = None
    if settings.provider == "openai":
        provider = llmops.provider
        if not isinstance(provider, OpenAIProvider):
            raise dg.Failure(f"LLMOPS_PROVIDER=openai built a {type(provider).__name__}")
        client = provider.client
        # Before the cost and size checks: an endpoint that cannot train (Ollama, vLLM,
        # llama.cpp) is not an error under auto, whatever the training file holds.
        if reason := missing_finetune_api(client):
            context.log.warning(reason)
            return _skipped(reason)
    spec, count = _spec_and_counter(settings)
    path = finetune_training_file["path"]
    report, usd = training_file.check_before_spend(
        path, spec, count, epochs=settings.finetune_epochs,
        max_cost_usd=settings.finetune_max_cost_usd, log=context.log.info)
    hyper: dict = {"n_epochs": settings.finetune_epochs}
    if settings.provider == "local":
        hyper["max_seq_tokens"] = spec.max_example_tokens
    key = content_hash(settings.provider, finetune_training_file["sha"], spec.base_model, hyper,
                       length=12)
    folder = settings.path("finetune", policy.RECORD).parent
    examples = policy.example_hashes(path)
    kept = _keep_current(context, settings, folder, examples, key,
                         {"base_model": spec.base_model, "hyperparameters": hyper})
    if kept is not None:
        return kept
    if client is not None:
        job = RemoteFineTune(client, settings.path("finetune", "remote"),
                             log=context.log.info, poll_s=settings.finetune_poll_s,
                             deadline_s=settings.finetune_deadline_s)
        outcome = job.run(path, base_model=spec.base_model, hyperparameters=hyper,
                          suffix="llmops", key=key)
        value: dict[str, Any] = {"model_id": outcome.model_id, "backend": "openai",
                                 "job_id": outcome.job_id, "reused": outcome.reused,
                                 "trained_tokens": outcome.trained_tokens}
    else:
        from llmops_pipelines.finetune.local_job import train_local

        value = train_local(settings, path, key, hyper, log=context.log.info)
    value.update(base_model=spec.base_model, training_sha=finetune_training_file["sha"],
                 hyperparameters=hyper, estimated_cost_usd=round(usd, 6),
                 training_tokens=report.total_tokens, training_key=key)
    policy.save_record(folder, value, examples)
    metadata: dict[str, Any] = {k: v for k, v in value.items()
                                if isinstance(v, (str, int, float, bool))}
    if value.get("epoch_losses"):
        metadata["epoch_losses"] = dg.MetadataValue.json(value["epoch_losses"])
        metadata["final_train_loss"] = value["epoch_losses"][-1]
    metadata["hyperparameters"] = dg.MetadataValue.json(hyper)
    return dg.Output(value, metadata=metadata)


def _skipped(reason: str) -> dg.Output[dict]:
    """No fine-tuned model: candidates go on with the base model alone."""
    return dg.Output({"model_id": None, "skipped": reason}, metadata={"skipped": reason})


def _keep_current(context: dg.AssetExecutionContext, settings: Settings, folder: Any,
                  examples: list[str], key: str, same: dict[str, Any]) -> dg.Output[dict] | None:
    """The current model, when the file changed by less than the retrain share; else None."""
    record = policy.load_record(folder)
    if record is None or record["value"].get("training_key") == key:
        return None  # no model yet, or the same data: the job's own reuse by key applies
    current = record["value"]
    if any(current.get(name) != wanted for name, wanted in same.items()):
        return None  # another base model or hyperparameters: always a new job
    gate = policy.threshold(settings.provider, settings.finetune_retrain_share,
                            settings.retrain_growth)
    moved = policy.drift(examples, record["examples"])
    if policy.should_retrain(moved.share, gate):
        context.log.info(f"{moved.describe()}: at or over the retrain share {gate:.0%}, "
                         "starting a new fine-tune")
        return None
    why = (f"{moved.describe()}, under the retrain share {gate:.0%} "
           "(LLMOPS_FINETUNE_RETRAIN_SHARE; default any change locally, LLMOPS_RETRAIN_GROWTH "
           "remotely): keeping the current model")
    context.log.info(why)
    value = {**current, "reused": True, "kept": True, "drift_share": round(moved.share, 6),
             "changed_examples": moved.changed}
    metadata: dict[str, Any] = {k: v for k, v in value.items()
                                if isinstance(v, (str, int, float, bool))}
    metadata["kept_because"] = why
    return dg.Output(value, metadata=metadata)
