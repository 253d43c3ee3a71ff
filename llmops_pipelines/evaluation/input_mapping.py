"""PromptFlow-style input mapping: an experiment says where each input of a prompt comes from.

A third-party Prompty file names its inputs its own way (Contoso's chat.prompty wants `customer`,
`documentation`, `question`, `history`); an experiment's `inputs:` binds them, so the file runs
unchanged as a candidate. A source is one of:

    question: ${data.question}        # a curated_qa column, else a key of the row's meta JSON
    documentation: ${retrieved}       # the row's chunks: [{id, title, content, doc_id, text}]
    customer:                         # the curated record under customers/ whose `match` field
      lookup: customers               #   equals the row's key (as strings); none: `default`
      key: ${data.customerId}         # (in a flow mapping {...} the ${...} must be quoted)
      match: id                       # default: id
      default: {}                     # default: {}
    history: []                       # anything else is a literal, passed as is
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from llmops_pipelines.hashing import content_hash, stable_json
from llmops_pipelines.prompts import Prompt
from llmops_pipelines.providers.yaml_lines import Located
from llmops_pipelines.rag.retrieval import Retrieved

DATA = re.compile(r"\$\{data\.([^{}\s]+)\}")
RETRIEVED = "${retrieved}"
FORMS = ("${data.FIELD}, ${retrieved}, {lookup: FOLDER, key: ${data.FIELD}, match: FIELD, "
         "default: VALUE}, or a literal without ${...}")
LOOKUP_KEYS = ("lookup", "key", "match", "default")
RECORD_FORMATS = ("csv", "json", "jsonl")  # curated documents that are records, not prose
# A record's text is curation's rendering (tabular.render_record): `name: value` lines as written
# and nested values as indented YAML. Read back with yaml.safe_load, a scrubbed `[NAME]` would be
# a list, and a name or e-mail scrubbed inside the YAML a flow sequence: those stay strings here.
FIELD_LINE = re.compile(r"([^\s:#][^:]*):(?: (.*))?")
PLACEHOLDER_VALUE = re.compile(r"^(\s*(?:- +)*(?:[^\s:\[\]'\"-][^:]*: +)?)(\[[A-Z_]+\].*)$", re.M)
INT, FLOAT = re.compile(r"-?(?:0|[1-9]\d*)"), re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class DataField:
    name: str


@dataclass(frozen=True)
class RetrievedChunks:
    pass


@dataclass(frozen=True)
class Lookup:
    folder: str
    key: str  # the curated_qa field holding the record's key
    match: str = "id"
    default: Any = field(default_factory=dict)


@dataclass(frozen=True)
class Literal:
    value: Any


Source = DataField | RetrievedChunks | Lookup | Literal


def _canonical(source: Source) -> Any:
    """The source as written, defaults filled in: what spec_hash and describe() show."""
    if isinstance(source, DataField):
        return f"${{data.{source.name}}}"
    if isinstance(source, RetrievedChunks):
        return RETRIEVED
    if isinstance(source, Lookup):
        return {"lookup": source.folder, "key": f"${{data.{source.key}}}", "match": source.match,
                "default": source.default}
    return source.value


def _source(doc: Located, at: str, value: Any) -> Source:
    if isinstance(value, dict) and "lookup" in value:
        unknown = sorted(set(value) - set(LOOKUP_KEYS))
        folder, key, match = value["lookup"], value.get("key"), value.get("match", "id")
        if unknown:
            raise doc.error(f"unknown lookup keys {unknown}; expected some of {list(LOOKUP_KEYS)}", at)
        if not isinstance(folder, str) or not folder.strip("/"):
            raise doc.error("lookup names a dataset folder, e.g. customers", f"{at}.lookup")
        found = DATA.fullmatch(key) if isinstance(key, str) else None
        if not found:
            raise doc.error("a lookup's key is ${data.FIELD}: the row field holding the record's key"
                            " (quote it inside {...})", f"{at}.key")
        if not isinstance(match, str) or not match:
            raise doc.error("match names the record field to compare with the key", f"{at}.match")
        return Lookup(folder.strip("/"), found.group(1), match, value.get("default", {}))
    if value == RETRIEVED:
        return RetrievedChunks()
    if isinstance(value, str) and (found := DATA.fullmatch(value)):
        return DataField(found.group(1))
    # Nothing is substituted inside a literal: a ${...} there is a typo or a misplaced source.
    if "${" in stable_json(value):
        raise doc.error(f"unknown source {value!r}; a source is {FORMS}", at)
    return Literal(value)


def parse_mapping(doc: Located, where: str, spec: Any, prompt: Prompt) -> InputMapping:
    """Validate an experiment's `inputs:` (prompt input -> source) against the prompt."""
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise doc.error(f"inputs is a mapping of prompt input -> source ({FORMS})", where)
    takes = prompt.declared | set(prompt.undeclared)
    sources: dict[str, Source] = {}
    for name, value in spec.items():
        if name not in takes:
            raise doc.error(f"{prompt.path} neither declares nor uses an input {name!r}; "
                            f"it takes {sorted(takes)}", f"{where}.{name}")
        sources[str(name)] = _source(doc, f"{where}.{name}", value)
    for name, declared in prompt.inputs.items():
        if name not in sources and not (isinstance(declared, dict) and "default" in declared):
            raise doc.error(f"input {name!r} of {prompt.path} is unbound: map it under inputs",
                            f"{where}.{name}")
    return InputMapping(prompt, sources, doc, where)


def _scalar(text: str) -> Any:
    # render_record wrote str(value): JSON numbers and Python booleans come back typed; "0012"
    # (an id, a zip code) stays text, unlike YAML 1.1, which reads it as octal.
    if INT.fullmatch(text):
        return int(text)
    if FLOAT.fullmatch(text):
        return float(text)
    return {"True": True, "False": False}.get(text, text)


def parse_record(text: str) -> dict[str, Any]:
    """A curated record's fields from its text; a `# title` line and a body become title/text."""
    lines = text.split("\n")
    heading = lines.pop(0)[2:] if lines and lines[0].startswith("# ") else None
    while heading is not None and lines and not lines[0]:
        lines.pop(0)
    record: dict[str, Any] = {}
    blocks: dict[str, list[str]] = {}  # nested values: their YAML lines, dedented
    last, body = "", ""
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if last in blocks and (line.startswith("  ") or (not line and following.startswith("  "))):
            blocks[last].append(line[2:])
        elif not line:  # render_record puts the body after the fields and a blank line
            body = "\n".join(lines[i + 1:])
            break
        elif found := FIELD_LINE.fullmatch(line):
            last, value = found.group(1), found.group(2)
            if value is None:
                blocks[last] = []
            record[last] = None if value is None else _scalar(value)
        elif last and isinstance(record[last], str):
            record[last] += "\n" + line  # a value that held a newline
        else:
            raise ValueError(f"line {i + 1}: {line[:60]!r} is not `name: value`")
    for name, block in blocks.items():
        try:
            record[name] = yaml.safe_load(PLACEHOLDER_VALUE.sub(
                lambda m: m.group(1) + json.dumps(m.group(2)), "\n".join(block)))
        except yaml.YAMLError as exc:
            raise ValueError(f"field {name!r}: {getattr(exc, 'problem', exc)}") from None
    if heading is not None:
        record.setdefault("title", heading)
    if body:
        record.setdefault("text", body)
    return record


@dataclass(frozen=True, eq=False)
class InputMapping:
    prompt: Prompt
    sources: dict[str, Source]  # in file order
    doc: Located
    where: str

    @property
    def spec_hash(self) -> str:
        """A content hash of the normalised mapping, for candidate identity."""
        return content_hash({name: _canonical(s) for name, s in self.sources.items()})

    def bind(self, documents: pd.DataFrame) -> Binder:
        """Resolve the lookups against curated_documents once; errors name the mapping's line."""
        titles = {d: t for d, t in zip(documents["doc_id"], documents["title"], strict=True)
                  if isinstance(t, str) and t}
        records: dict[tuple[str, str], dict[str, Any]] = {}
        for name, source in self.sources.items():
            if isinstance(source, Lookup) and (source.folder, source.match) not in records:
                records[(source.folder, source.match)] = self._index(
                    documents, source, f"{self.where}.{name}")
        return Binder(self, titles, records)

    def _index(self, documents: pd.DataFrame, lookup: Lookup, at: str) -> dict[str, Any]:
        # Sorted, so which of two clashing records is named first never depends on frame order.
        rows = documents[documents["source_path"].str.startswith(lookup.folder + "/")
                         & documents["format"].isin(RECORD_FORMATS)].sort_values("doc_id")
        if rows.empty:
            folders = sorted({p.split("/")[0] for p in documents["source_path"] if "/" in p})
            raise self.doc.error(f"lookup {lookup.folder!r}: no curated records under "
                                 f"{lookup.folder}/; folders with documents: {folders}", at)
        index: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for doc_id, text in zip(rows["doc_id"], rows["text"], strict=True):
            try:
                record = parse_record(text)
            except ValueError as exc:
                raise self.doc.error(f"lookup {lookup.folder!r}: curated record {doc_id} does not "
                                     f"read back as fields: {exc}", at) from None
            if lookup.match in record:
                value = str(record[lookup.match])
                if value in owners:
                    raise self.doc.error(f"lookup {lookup.folder!r}: {lookup.match} {value!r} is "
                                         f"in both {owners[value]} and {doc_id}", at)
                index[value], owners[value] = record, doc_id
        if not index:
            raise self.doc.error(f"lookup {lookup.folder!r}: no record has a field "
                                 f"{lookup.match!r}", at)
        return index


@dataclass(frozen=True, eq=False)
class Binder:
    """A mapping bound to one curated_documents frame; the values share its records: read-only."""

    mapping: InputMapping
    titles: dict[str, str]
    records: dict[tuple[str, str], dict[str, Any]]

    def values(self, row: Any, contexts: Sequence[Retrieved]) -> dict[str, Any]:
        """Keyword arguments for prompt.render for one curated_qa row (a namedtuple)."""
        meta_text = getattr(row, "meta", None)
        meta = json.loads(meta_text) if isinstance(meta_text, str) and meta_text else {}

        def data(name: str) -> Any:
            value = getattr(row, name) if name in row._fields else meta.get(name)
            return None if isinstance(value, float) and math.isnan(value) else value  # NaN: absent

        prompt, out = self.mapping.prompt, dict[str, Any]()
        for name, source in self.mapping.sources.items():
            if isinstance(source, RetrievedChunks):
                out[name] = [{"id": c.doc_id, "title": self.titles.get(c.doc_id, c.doc_id),
                              "content": c.text, "doc_id": c.doc_id, "text": c.text}
                             for c in contexts]
            elif isinstance(source, Lookup):
                key = data(source.key)
                found = None if key is None else \
                    self.records[(source.folder, source.match)].get(str(key))
                out[name] = source.default if found is None else found
            elif isinstance(source, DataField):
                value, declared = data(source.name), prompt.inputs.get(name)
                if value is None and isinstance(declared, dict) and "default" in declared:
                    value = declared["default"]
                elif value is None and not prompt.strict:
                    continue  # left undefined: renders empty, as Prompty's runtime does
                out[name] = value
            else:
                out[name] = source.value
        return out

    def describe(self) -> str:
        """A short summary: 'question <- ${data.question}, customer <- lookup customers by ...'."""
        parts = []
        for name, source in self.mapping.sources.items():
            if isinstance(source, Lookup):
                on = f" on {source.match}" if source.match != "id" else ""
                count = len(self.records[(source.folder, source.match)])
                shown = f"lookup {source.folder} by ${{data.{source.key}}}{on} ({count} records)"
            elif isinstance(source, Literal):
                shown = stable_json(source.value)[:60]
            else:
                shown = _canonical(source)
            parts.append(f"{name} <- {shown}")
        return ", ".join(parts)
