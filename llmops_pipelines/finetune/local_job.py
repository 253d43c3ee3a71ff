"""The local fine-tune job: LoRA on the embedded model, exported to GGUF, reused by content key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops_pipelines.providers.local_files import (
    GGUF_NAME,
    LOCAL_FT_PREFIX,
    local_model_dir,
    smollm2_gguf,
)
from llmops_pipelines.settings import Settings


def train_local(settings: Settings, training_file: str | Path, key: str,
                hyperparameters: dict[str, Any], *, log: Callable[[str], None] = print
                ) -> dict[str, Any]:
    """Train (or reuse) the LoRA model for this key; returns what the finetuned_model asset records."""
    from llmops_pipelines.finetune.lora import export_gguf, train_lora

    model_id = f"{LOCAL_FT_PREFIX}{key}"
    out = local_model_dir(settings, model_id)
    record_path = out / "training.json"
    if record_path.exists() and (out / GGUF_NAME).exists():
        log(f"reusing {model_id}: same training data, base model and hyperparameters")
        return {**json.loads(record_path.read_text()), "reused": True}
    base = smollm2_gguf()
    result = train_lora(Path(training_file), out, base_gguf=base,
                        epochs=int(hyperparameters["n_epochs"]),
                        max_seq_tokens=int(hyperparameters["max_seq_tokens"]), log=log)
    gguf = export_gguf(result.model_dir, base_gguf=base, out_path=out / GGUF_NAME)
    record = {
        "model_id": model_id, "backend": "local-lora", "gguf": str(gguf),
        "adapter_dir": str(result.adapter_dir), "merged_dir": str(result.model_dir),
        "epoch_losses": [round(x, 4) for x in result.epoch_losses],
        "train_examples": result.train_examples, "train_tokens": result.train_tokens,
        "train_seconds": round(result.seconds, 1), "peak_rss_mb": round(result.peak_rss_mb),
    }
    # Written last: a killed run leaves no record, so the next run trains again.
    record_path.write_text(json.dumps(record, indent=2))
    log(f"trained {model_id}: loss per epoch {record['epoch_losses']} in {record['train_seconds']}s")
    return {**record, "reused": False}
