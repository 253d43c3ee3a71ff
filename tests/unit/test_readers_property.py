"""Property: random bytes and random nested structures through every reader never crash curation;
every file ends curated or rejected, each reject naming its file and a line inside it."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops_pipelines.curation import curate

SUFFIXES = (".md", ".txt", ".csv", ".json", ".jsonl")
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=30)


def _wrap(value: Any, depth: int, as_dict: bool) -> str:
    # Written as text: json.dumps itself recurses and cannot write a value 3000 levels deep.
    inner = json.dumps(value)
    return ('{"a":' * depth + inner + "}" * depth) if as_dict else "[" * depth + inner + "]" * depth


# Built inside the test from (value, depth, kind): a 3000-deep value is too deep to print.
deep = st.tuples(nested, st.integers(0, 3000), st.booleans())


def _check(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, content in files.items():
            (root / name).write_bytes(content)
        result = curate(root)  # never raises on file content
        a = result.accounting
        assert a["unaccounted"] == 0 and a["ingested"] == a["documents"] + a["qa"] + a["rejected"]
        for reject in result.rejects.to_dict("records"):
            assert reject["source_path"] in files, reject
            lines = len(files[reject["source_path"]].splitlines()) + 1  # \r ends a line too
            assert 0 <= reject["line"] <= lines and reject["rule"] and reject["reason"], reject
        produced = set(result.documents["source_path"]) | set(result.qa["source_path"]) | \
            set(result.rejects["source_path"])
        assert produced >= set(files) - {s["source_path"] for s in result.skipped}


@PROPERTY
@given(st.binary(max_size=2000), st.sampled_from(SUFFIXES))
def test_random_bytes_to_every_reader(content: bytes, suffix: str) -> None:
    _check({f"data{suffix}": content})


@PROPERTY
@given(st.lists(deep, min_size=1, max_size=4))
def test_random_nested_structures_as_json_and_jsonl(specs: list[tuple[Any, int, bool]]) -> None:
    values = [_wrap(*spec) for spec in specs]
    _check({"data.json": f"[{', '.join(values)}]".encode(), "single.json": values[0].encode(),
            "data.jsonl": "\n".join(values).encode()})


@PROPERTY
@given(st.lists(st.lists(st.text(max_size=40), min_size=1, max_size=5), min_size=1, max_size=8))
def test_random_rows_as_csv(rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    _check({"data.csv": out.getvalue().encode("utf-8", "surrogatepass")})
