"""A real LoRA fine-tune on CPU, offline, from the SmolLM2 GGUF; and chat with the result."""

from __future__ import annotations

import json
import os
import random
import resource
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmops_pipelines.errors import FineTuneError
from llmops_pipelines.finetune.training_file import line_problem

IGNORE = -100  # the label value torch's cross-entropy skips: prompt and padding tokens
LOG_EVERY = 5


class LocalTrainingDataError(FineTuneError):
    """A training file with no usable chat example; names the file and the first bad line."""


@dataclass(frozen=True)
class LocalTrainResult:
    """What a local LoRA run produced and what it cost."""

    model_dir: Path  # merged weights (safetensors + tokenizer + config) loadable by transformers
    adapter_dir: Path  # the LoRA adapter (peft save_pretrained)
    epoch_losses: list[float]  # mean training loss per epoch, weighted by trained tokens
    train_examples: int
    train_tokens: int
    seconds: float
    peak_rss_mb: float


def read_chat_examples(path: Path, log: Callable[[str], None] | None = None
                       ) -> list[list[dict[str, str]]]:
    """The usable conversations in an OpenAI chat-format JSONL file; raises if there are none."""
    examples: list[list[dict[str, str]]] = []
    bad: list[str] = []
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        problem = line_problem(raw)
        if problem is None:
            examples.append([{"role": m["role"], "content": m["content"]}
                             for m in json.loads(raw)["messages"]])
        else:
            bad.append(f"{path}:{number}: {problem}")
    if not examples:
        raise LocalTrainingDataError(
            f"{bad[0]} (and no line is a usable example)" if bad
            else f"{path}: no training examples (the file is empty)")
    if bad and log is not None:
        # Upstream validation (finetune.validate_training_file) is strict; here a few bad
        # lines should not cost a long run, but they must not vanish silently either.
        log(f"skipped {len(bad)} unusable line(s); first: {bad[0]}")
    return examples


def _encode(tokenizer: Any, messages: list[dict[str, str]], max_tokens: int) -> tuple[list, list]:
    """Token ids and labels; only the final assistant message (and its end tag) is learned."""
    # Render text, then split at the generation prompt: the prompt is tokenized on its own,
    # exactly as serving will tokenize it, so the learned boundary matches inference.
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False,
                                           add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise FineTuneError("the chat template does not render the prompt as a prefix")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    # Over budget: keep the answer's start (up to half the budget if the prompt needs it),
    # and the end of the prompt, which holds the question being answered.
    answer_ids = answer_ids[:max_tokens - min(len(prompt_ids), max_tokens // 2)]
    prompt_ids = prompt_ids[max(0, len(prompt_ids) - (max_tokens - len(answer_ids))):]
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


def _load_base(base_gguf: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # local_files_only: a GGUF path must never turn into a hub download.
    kwargs = {"gguf_file": base_gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(base_gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(base_gguf.parent, dtype=torch.float32, **kwargs)
    # The weights are dequantized floats now; a leftover gguf quantization_config would make
    # the merged checkpoint claim a quantization it does not have.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    return tokenizer, model


def train_lora(training_file: Path, out_dir: Path, *, base_gguf: Path, epochs: int = 1,
               learning_rate: float = 2e-4, lora_r: int = 8, lora_alpha: int = 16,
               max_seq_tokens: int = 512, batch_size: int = 4, seed: int = 0,
               log: Callable[[str], None] = print) -> LocalTrainResult:
    """LoRA-train the GGUF base on a chat JSONL on CPU; save the adapter and merged model."""
    import torch
    from peft import LoraConfig, get_peft_model

    started = time.monotonic()
    conversations = read_chat_examples(training_file, log)
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer, model = _load_base(Path(base_gguf))
    log(f"loaded {base_gguf.name} in {time.monotonic() - started:.1f}s")
    encoded = [_encode(tokenizer, c, max_seq_tokens) for c in conversations]
    train_tokens = sum(sum(1 for t in labels if t != IGNORE) for _, labels in encoded)

    # All linear layers: at 135M the extra adapter cost is small next to the frozen forward,
    # and attention-only adapters learn new facts much more slowly.
    config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                        target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.train()
    # A plain loop, not transformers.Trainer: no accelerate/datasets machinery to start,
    # no hidden defaults (warmup, logging dirs, device moves), and the per-epoch loss is ours.
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=learning_rate)
    order = random.Random(seed)
    epoch_losses: list[float] = []
    for epoch in range(1, epochs + 1):
        indexes = list(range(len(encoded)))
        order.shuffle(indexes)
        batches = [indexes[i:i + batch_size] for i in range(0, len(indexes), batch_size)]
        loss_sum, token_sum = 0.0, 0
        for step, batch in enumerate(batches, start=1):
            rows = [encoded[i] for i in batch if _answer_tokens(encoded[i][1])]
            batch_tokens = sum(_answer_tokens(labels) for _, labels in rows)
            optimizer.zero_grad(set_to_none=True)
            batch_loss = 0.0
            # One sequence at a time, gradients accumulated and weighted by answer tokens: the
            # same gradient as the padded batch, but with no padding mask attention runs its
            # fused causal kernel and memory holds one example's activations, not the batch's
            # (8.6 GB peak on the demo data with padded batches of 4).
            for ids, labels in rows:
                loss, tokens = _answer_loss(model, torch.tensor([ids]), torch.tensor([labels]))
                (loss * (tokens / batch_tokens)).backward()
                batch_loss += loss.item() * tokens
            optimizer.step()
            loss_sum, token_sum = loss_sum + batch_loss, token_sum + batch_tokens
            if step % LOG_EVERY == 0 or step == len(batches):
                log(f"epoch {epoch}/{epochs} step {step}/{len(batches)} "
                    f"loss {batch_loss / max(batch_tokens, 1):.4f}")
        epoch_losses.append(loss_sum / max(token_sum, 1))
        log(f"epoch {epoch}/{epochs} mean loss {epoch_losses[-1]:.4f} "
            f"({time.monotonic() - started:.0f}s elapsed)")

    out_dir = Path(out_dir)
    adapter_dir, model_dir = out_dir / "adapter", out_dir / "merged"
    with warnings.catch_warnings():
        # peft looks for a config.json beside the base to see if the vocabulary changed; a
        # GGUF has none, and LoRA never touches the embeddings here.
        warnings.filterwarnings("ignore", message="Could not find a config file")
        model.save_pretrained(adapter_dir)
    merged = model.merge_and_unload()
    merged.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return LocalTrainResult(
        model_dir=model_dir, adapter_dir=adapter_dir, epoch_losses=epoch_losses,
        train_examples=len(encoded), train_tokens=train_tokens,
        seconds=time.monotonic() - started,
        # ru_maxrss is in KiB on Linux: the process's peak, which training dominates.
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _answer_tokens(labels: list[int]) -> int:
    """How many next-token targets of this example are answer tokens (the first predicts none)."""
    return sum(1 for t in labels[1:] if t != IGNORE)


def _answer_loss(model: Any, ids: Any, labels: Any) -> tuple[Any, int]:
    """Mean next-token cross-entropy over the answer tokens, and how many there were."""
    import torch

    # The same loss as model(labels=...), but the vocabulary projection (49k wide) runs only
    # where an answer token is predicted: prompts are most tokens, so this saves time and GBs.
    base = model.get_base_model()
    hidden = base.get_decoder()(input_ids=ids).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep]), int(keep.sum())


class TransformersChat:
    """Chat with a merged fine-tuned model directory on CPU (greedy)."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(os.cpu_count() or 1)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32, local_files_only=True).eval()
        # generate() is not safe to run concurrently on one model: serve one call at a time.
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int = 128,
                 temperature: float = 0.0) -> tuple[str, int, int]:
        """The reply, the prompt's token count and the reply's token count."""
        tokenizer = self._tokenizer
        prompt = tokenizer.apply_chat_template(messages, tokenize=False,
                                               add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {
            "do_sample": False}
        pad = tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id
        with self._lock, self._torch.inference_mode():
            out = self._model.generate(
                ids, attention_mask=self._torch.ones_like(ids), max_new_tokens=max_tokens,
                pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, **sampling)
        new = out[0, ids.shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True).strip()
        # The stop token is not counted, as llama.cpp and the OpenAI API count completions.
        return text, int(ids.shape[1]), int((new != tokenizer.eos_token_id).sum())


def export_gguf(model_dir: Path, *, base_gguf: Path, out_path: Path | None = None,
                tensor_type: Literal["Q8_0", "F16", "F32"] = "Q8_0") -> Path:
    """Write a merged llama-architecture model as a GGUF that llama.cpp serves."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    # Everything but the weights (hyperparameters, vocabulary, chat template) is copied from
    # the base GGUF: LoRA changes none of it, and it spares us llama.cpp's converter script,
    # which is not on PyPI.
    reader = gguf.GGUFReader(base_gguf)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    if fields.get("general.architecture") != "llama":
        raise FineTuneError(f"{base_gguf}: GGUF export supports llama models only")
    qtype = gguf.GGMLQuantizationType[tensor_type]
    out_path = Path(out_path or Path(model_dir) / f"model.{tensor_type}.gguf")
    # Written aside and renamed at the end: a server never sees a half-written model.
    partial = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch="llama")
    for name, field in reader.fields.items():
        if name == "general.architecture" or name.startswith("GGUF."):
            continue  # GGUFWriter writes these itself
        value = fields[name]
        if name == "general.file_type":
            value = {"Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "F16": gguf.LlamaFileType.MOSTLY_F16,
                     "F32": gguf.LlamaFileType.ALL_F32}[tensor_type]
        array = field.types[0] == gguf.GGUFValueType.ARRAY
        writer.add_key_value(name, value, field.types[0],
                             sub_type=field.types[-1] if array else None)

    heads = {"attn_q": fields["llama.attention.head_count"],
             "attn_k": fields["llama.attention.head_count_kv"]}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, fields["llama.block_count"])
    expected = {t.name for t in reader.tensors}
    weights: dict[str, Any] = {}
    for shard in sorted(Path(model_dir).glob("*.safetensors")):
        weights.update(load_file(shard))
    for hf_name, data in weights.items():
        mapped = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is None or mapped not in expected:
            if mapped == "output.weight":
                continue  # tied to token_embd, as in the base
            raise FineTuneError(f"{model_dir}: tensor {hf_name} has no place in {base_gguf.name}")
        expected.discard(mapped)
        data = data.astype(np.float32)
        kind = mapped.split(".")[-2]
        if kind in heads:
            # llama.cpp stores Q and K rows interleaved for its rope; transformers un-permuted
            # them when it loaded the GGUF, so permute back (as convert_hf_to_gguf.py does).
            n = int(heads[kind])
            data = data.reshape(n, 2, data.shape[0] // n // 2, *data.shape[1:]) \
                .swapaxes(1, 2).reshape(data.shape)
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(mapped, data)  # norms stay F32, as llama.cpp expects
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(mapped, data.astype(np.float16))
        else:
            writer.add_tensor(mapped, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    if expected:
        raise FineTuneError(f"{model_dir}: missing tensors for {sorted(expected)[:3]}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out_path)
    return out_path
