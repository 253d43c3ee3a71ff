"""Which files of a dataset folder are data, and how to read them: rules plus datasets.yaml."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from llmops_pipelines.errors import DataError

CONFIG_NAME = "datasets.yaml"
TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text"}
RECORD_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl"}
# Files that describe a dataset rather than belong to it.
DESCRIPTIONS = re.compile(r"^(readme|license|licence|copying|notice|changelog|authors|contributing)"
                          r"(\.[a-z]+)?$", re.IGNORECASE)
KINDS = ("documents", "qa", "ignore")


@dataclass(frozen=True)
class FileRule:
    """How to read files matching one datasets.yaml pattern; None means 'detect'."""

    kind: str | None = None
    text: str | None = None
    id: str | None = None
    title: str | None = None
    question: str | None = None
    answer: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Quality:
    """Filters and thresholds; lengths are characters, so they mean the same in every script."""

    min_doc_chars: int = 40
    max_doc_chars: int = 200_000
    min_question_chars: int = 3
    max_question_chars: int = 2_000
    near_duplicate: float = 0.9  # Jaccard similarity of character 5-gram sets
    # One bad file is one reject: bigger files and deeper JSON nesting are refused, not parsed.
    max_file_bytes: int = 50_000_000
    max_json_depth: int = 64


@dataclass(frozen=True)
class DatasetConfig:
    """The folder's datasets.yaml, or the defaults when there is none."""

    files: dict[str, FileRule] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    quality: Quality = field(default_factory=Quality)
    seed: int = 0
    faq: bool = True
    pii_allow: tuple[str, ...] = ()

    def rule_for(self, rel: str) -> FileRule:
        """The first matching pattern's rule (patterns match the path relative to the folder)."""
        return next((rule for pattern, rule in self.files.items() if fnmatch.fnmatch(rel, pattern)),
                    FileRule())


def _typed(cls: type, raw: Any, where: str, path: Path) -> Any:
    if not isinstance(raw, dict):
        raise DataError(f"expected a mapping, found {type(raw).__name__}", path=str(path), field=where)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise DataError(f"unknown keys {unknown}; expected some of {sorted(known)}",
                        path=str(path), field=where)
    for key, value in raw.items():
        expected = type(known[key].default) if known[key].default is not None else str
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, expected) or isinstance(value, bool) is not (expected is bool):
            raise DataError(f"expected {expected.__name__}, found {value!r}",
                            path=str(path), field=f"{where}.{key}")
    return cls(**raw)


def _strings(raw: Any, where: str, path: Path) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise DataError("expected a list of strings", path=str(path), field=where)
    return tuple(raw)


def load_config(root: Path) -> DatasetConfig:
    """Read root/datasets.yaml; a wrong key or type is a DataError naming the file and field."""
    path = root / CONFIG_NAME
    if not path.is_file():
        return DatasetConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid YAML: {exc}", path=str(path)) from exc
    top = {"files", "ignore", "quality", "split", "faq", "pii"}
    if not isinstance(raw, dict) or set(raw) - top:
        extra = sorted(set(raw) - top) if isinstance(raw, dict) else raw
        raise DataError(f"unknown top-level keys {extra}; expected some of {sorted(top)}",
                        path=str(path))
    files = {}
    for pattern, spec in (raw.get("files") or {}).items():
        rule = _typed(FileRule, spec or {}, f"files.{pattern}", path)
        if rule.kind is not None and rule.kind not in KINDS:
            raise DataError(f"kind {rule.kind!r}: expected one of {KINDS}", path=str(path),
                            field=f"files.{pattern}.kind")
        files[str(pattern)] = rule
    quality = _typed(Quality, raw.get("quality") or {}, "quality", path)
    if not 0 < quality.near_duplicate <= 1:
        raise DataError(f"{quality.near_duplicate} is not in (0, 1]", path=str(path),
                        field="quality.near_duplicate")
    split = raw.get("split") or {}
    if set(split) - {"seed"} or not isinstance(split.get("seed", 0), int):
        raise DataError("expected {seed: <int>}", path=str(path), field="split")
    pii = raw.get("pii") or {}
    if set(pii) - {"allow"}:
        raise DataError("expected {allow: [literal strings]}", path=str(path), field="pii")
    if not isinstance(raw.get("faq", True), bool):
        raise DataError("expected true or false", path=str(path), field="faq")
    return DatasetConfig(
        files=files, ignore=_strings(raw.get("ignore") or [], "ignore", path),
        quality=quality,
        seed=split.get("seed", 0), faq=raw.get("faq", True),
        pii_allow=_strings(pii.get("allow") or [], "pii.allow", path),
    )


def _walk(root: Path) -> tuple[list[Path], list[tuple[str, str, str]]]:
    """Regular files under root, never leaving it; and (rel, rule, reason) for links refused."""
    base = root.resolve()
    files, refused = [], []
    for folder, dirs, names in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            path = here / name
            if path.is_symlink():
                dirs.remove(name)  # a linked folder is never walked: inside, it is walked anyway
                target = path.resolve()
                if not target.is_relative_to(base):
                    refused.append((path.relative_to(root).as_posix(), "symlink_outside",
                                    f"a link to {target}, outside the dataset folder {base}"))
        for name in names:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if not path.is_symlink():
                if path.is_file():
                    files.append(path)
                continue
            target = Path(os.path.realpath(path))
            if not target.exists():
                refused.append((rel, "broken_symlink", f"a link to {os.readlink(path)}, which "
                                "does not exist"))
            elif not target.is_relative_to(base):
                refused.append((rel, "symlink_outside",
                                f"a link to {target}, outside the dataset folder {base}"))
            elif target.is_file():
                files.append(path)
    return sorted(files), sorted(refused)


def discover(root: Path, config: DatasetConfig) -> tuple[list[tuple[Path, str]], list[tuple[str, str]],
                                                         list[tuple[str, str, str]]]:
    """(path, relative path) of every data file, sorted; (relative path, why) of files skipped;
    (relative path, rule, reason) of links refused: the walk never leaves root."""
    files, refused = _walk(root)
    # A folder holding .prompty files holds prompts and their sample inputs, not data.
    prompt_dirs = {p.parent for p in files if p.suffix == ".prompty"}
    data, skipped = [], []
    for path in files:
        rel = path.relative_to(root).as_posix()
        why = None
        if any(part.startswith(".") for part in Path(rel).parts):
            why = "hidden"
        elif rel == CONFIG_NAME:
            why = "dataset configuration"
        elif DESCRIPTIONS.match(path.name):
            why = "describes the dataset"
        elif path.parent in prompt_dirs:
            why = "prompt folder (holds .prompty files)"
        elif any(fnmatch.fnmatch(rel, pattern) for pattern in config.ignore):
            why = f"ignored by {CONFIG_NAME}"
        elif config.rule_for(rel).kind == "ignore":
            why = f"kind: ignore in {CONFIG_NAME}"
        if why:
            skipped.append((rel, why))
        else:
            data.append((path, rel))
    return data, skipped, refused
