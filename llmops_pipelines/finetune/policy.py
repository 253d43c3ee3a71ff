"""When a changed training file is worth a new fine-tune job, and how far it drifted otherwise.

The training file changes when its examples or their retrieved contexts change. A new job
starts when the share of changed or added examples (relative to the file the current model
was trained on) reaches a threshold: any change locally, where training is free, and
LLMOPS_RETRAIN_GROWTH remotely, where a job costs money and hours. Otherwise the current model
is kept and the drift is reported. The retraining sensor applies the same rule.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_pipelines.hashing import content_hash

RECORD = "current_model.json"  # under LLMOPS_HOME/finetune: the model in use and its examples


def example_hashes(path: str | Path) -> list[str]:
    """One content hash per training example (JSONL line), in file order."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [content_hash(line, length=16) for line in lines if line.strip()]


@dataclass(frozen=True)
class Drift:
    changed: int  # examples of the new file that the current model was not trained on
    total: int  # examples in the new file

    @property
    def share(self) -> float:
        return self.changed / self.total if self.total else 0.0

    def describe(self) -> str:
        return f"{self.changed} of {self.total} training examples changed or added ({self.share:.1%})"


def drift(now: list[str], trained: list[str]) -> Drift:
    """How many of `now` are not among `trained` (a multiset: duplicates count once each)."""
    left = Counter(trained)
    changed = 0
    for key in now:
        if left[key] > 0:
            left[key] -= 1
        else:
            changed += 1
    return Drift(changed, len(now))


def threshold(provider: str, setting: float | None, growth: float) -> float:
    """The share that starts a job: the setting when given, else 0 (any change) locally, else growth."""
    if setting is not None:
        return setting
    return 0.0 if provider == "local" else growth


def should_retrain(share: float, gate: float) -> bool:
    """A change of at least `gate` (0: any change at all) calls for a new job."""
    return share > 0 and share >= gate


def load_record(folder: Path) -> dict[str, Any] | None:
    """The current model's value and the example hashes it was trained on (None: none yet)."""
    path = folder / RECORD
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def save_record(folder: Path, value: dict[str, Any], examples: list[str]) -> None:
    """Remember the model now in use; written last, so a killed run leaves the previous one."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (RECORD + ".tmp")
    tmp.write_text(json.dumps({"value": value, "examples": examples}), encoding="utf-8")
    tmp.replace(folder / RECORD)
