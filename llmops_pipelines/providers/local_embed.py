"""all-MiniLM-L6-v2 int8 on onnxruntime + tokenizers: no torch, no downloads."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from llmops_pipelines.providers.base import l2_normalise
from llmops_pipelines.providers.local_files import minilm_onnx, minilm_tokenizer

MAX_TOKENS = 256
BATCH = 64


class MiniLMEmbedder:
    """Sentence embeddings (384-d, mean pooled, L2-normalised) like sentence-transformers."""

    dim = 384

    def __init__(self, threads: int = 2) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(minilm_tokenizer()))
        # The shipped tokenizer pads every input to 128; dynamic padding to the longest in
        # the batch is ~3x faster on short texts, and we truncate at the model's real limit.
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(minilm_onnx()), options,
                                            providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Tokens the embedder sees (special tokens included), for chunk sizing."""
        return len(self.tokenizer.encode(text).ids)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sorting by length keeps padding low inside each batch; the order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            with self._lock:
                encodings = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[..., None].astype(np.float32)
            out[idx] = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return l2_normalise(out)
