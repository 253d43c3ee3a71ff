"""The local embedder: dynamic padding vs the tokenizer's fixed 128-token padding."""

from __future__ import annotations

import time

from llmops_pipelines.providers.local_embed import MiniLMEmbedder


def run(quick: bool = False) -> dict:
    n = 200 if quick else 1000
    texts = [f"Question {i}: how long does the {i % 13}-cell battery take to charge at home?"
             for i in range(n)]
    dynamic = MiniLMEmbedder()
    dynamic(texts[:8])  # warm-up
    started = time.perf_counter()
    dynamic(texts)
    dynamic_s = time.perf_counter() - started
    fixed = MiniLMEmbedder()
    fixed.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=128)
    fixed(texts[:8])
    started = time.perf_counter()
    fixed(texts)
    fixed_s = time.perf_counter() - started
    return {"texts": n, "dynamic_padding_per_s": round(n / dynamic_s, 1),
            "fixed_padding_per_s": round(n / fixed_s, 1),
            "dynamic_over_fixed": round(fixed_s / dynamic_s, 2)}
