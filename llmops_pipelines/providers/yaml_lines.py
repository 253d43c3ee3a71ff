"""YAML loaded as plain data plus the line of every key, so a config error can name file:line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_pipelines.errors import DataError


@dataclass
class Located:
    """A parsed YAML document and the 1-based line of each key path ('models.3.name')."""

    data: Any
    path: str
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, where: str) -> int | None:
        """The line of `where`, or of its nearest parent that has one."""
        while where:
            if where in self.lines:
                return self.lines[where]
            where = where.rpartition(".")[0]
        return None

    def error(self, message: str, where: str) -> DataError:
        return DataError(message, path=self.path, line=self.line(where), field=where or None)


def _walk(node: yaml.Node, prefix: str, lines: dict[str, int]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            where = f"{prefix}.{key}" if prefix else key
            lines[where] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, where, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            where = f"{prefix}.{i}" if prefix else str(i)
            lines[where] = item.start_mark.line + 1
            items.append(_walk(item, where, lines))
        return items
    # Scalars through the safe constructor, so numbers, booleans and nulls keep their types.
    return yaml.SafeLoader("").construct_object(node, deep=True)


def load_located(path: Path) -> Located:
    """Parse one YAML file; unreadable or invalid YAML is a DataError naming the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise DataError(f"cannot read: {exc}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path=str(path),
                        line=mark.line + 1 if mark else None) from exc
    lines: dict[str, int] = {}
    data = _walk(node, "", lines) if node is not None else {}
    return Located(data, str(path), lines)
