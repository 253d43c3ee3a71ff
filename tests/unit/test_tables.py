"""llmops_pipelines.tables: the same files locally, any fsspec filesystem, no credentials shown."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from upath import UPath

from llmops_pipelines import tables
from llmops_pipelines.rag import versions
from llmops_pipelines.settings import Settings


def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"q{i}" for i in range(50)], "score": [i / 7 for i in range(50)]})


@pytest.mark.parametrize("uri", [
    "s3://AKIAEXAMPLE:wJalrSECRET@bucket/tables",
    "https://user:pa55word@host.example/tables?sig=abc123SECRET&se=2030",
    "gs://bucket/tables?token=ya29.SECRET",
])
def test_masked_drops_user_password_and_query_values(uri: str) -> None:
    shown = tables.masked(UPath(uri) / "evaluation_rows.parquet" if uri.startswith("s3")
                          else uri)
    assert "SECRET" not in shown and "pa55word" not in shown and "AKIAEXAMPLE" not in shown
    assert shown.split("://")[0] == uri.split("://")[0] and "***" in shown


def test_plain_locations_are_shown_as_they_are(tmp_path: Path) -> None:
    assert tables.masked(tmp_path / "x.parquet") == str(tmp_path / "x.parquet")
    assert tables.masked("memory://bucket/tables/x.parquet") == "memory://bucket/tables/x.parquet"


def test_local_writes_are_byte_for_byte_what_pandas_writes(tmp_path: Path) -> None:
    df = frame()
    df.to_parquet(tmp_path / "pandas.parquet", index=False)
    # The default root (a UPath of LLMOPS_HOME/tables), a plain Path, a file:// URL.
    for folder, target in ((tmp_path / "a", UPath(tmp_path / "a" / "ours.parquet")),
                           (tmp_path / "b", tmp_path / "b" / "ours.parquet"),
                           (tmp_path / "c", UPath((tmp_path / "c" / "ours.parquet").as_uri()))):
        tables.write_table(target, df)
        assert (folder / "ours.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
    # No temporary file is left beside the tables.
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []


def test_memory_filesystem_round_trip_and_listing() -> None:
    root = UPath(f"memory://llmops-test-{uuid.uuid4().hex[:8]}/tables")
    try:
        assert not tables.exists(root / "t.parquet") and tables.names(root / "nightly", "*") == []
        tables.write_table(root / "t.parquet", frame())
        tables.write_json(root / "d.json", {"promoted": True, "reasons": ["ok"]})
        for night in ("2026-01-02", "2026-01-01"):
            tables.write_table(root / "nightly" / f"{night}.parquet", frame())
        pd.testing.assert_frame_equal(tables.read_table(root / "t.parquet", columns=["id"]),
                                      frame()[["id"]])
        assert tables.read_json(root / "d.json") == {"promoted": True, "reasons": ["ok"]}
        assert tables.names(root / "nightly", "????-??-??.parquet") == [
            "2026-01-01.parquet", "2026-01-02.parquet"]
    finally:
        fsspec.filesystem("memory").rm(root.parent.path, recursive=True)


def test_tables_root_is_the_uri_or_the_home_folder_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    local = Settings.from_env({"LLMOPS_HOME": str(home)})
    assert str(local.tables_root) == str(home / "tables") and not home.exists()
    shared = Settings.from_env({"LLMOPS_HOME": str(home), "LLMOPS_TABLES_URI": "memory://b/t"})
    assert shared.tables_root.protocol == "memory" and str(shared.tables_root) == "memory://b/t"


def test_chroma_token_header_is_validated_and_the_token_kept_out_of_repr() -> None:
    env = {"LLMOPS_CHROMA_TOKEN": "tok-SECRET", "LLMOPS_CHROMA_TOKEN_HEADER": "x-chroma-token"}
    settings = Settings.from_env(env)
    assert settings.chroma_token_header == "X-Chroma-Token" and "SECRET" not in repr(settings)
    assert Settings.from_env({}).chroma_token_header == "Authorization"
    with pytest.raises(Exception, match="LLMOPS_CHROMA_TOKEN_HEADER='Cookie'"):
        Settings.from_env({"LLMOPS_CHROMA_TOKEN_HEADER": "Cookie"})


def test_replaced_versions_go_only_after_the_grace_period_and_builds_stay() -> None:
    now = 1_000_000.0
    meta = versions.version_metadata("chunks-m", "m", "v1", "b1", "complete")
    old = {**meta, "at": now - versions.GRACE_S - 1}
    assert versions.removable(old, "chunks-m", set(), "chunks-m-vb1", now)
    assert not versions.removable(old, "chunks-m", {"chunks-m-vb1"}, "chunks-m-vb1", now)  # live
    assert not versions.removable({**meta, "at": now - 10}, "chunks-m", set(), "x", now)
    assert not versions.removable(old, "chunks-other", set(), "x", now)  # another model's
    building = {**old, "state": "building"}  # a run still filling it
    assert not versions.removable(building, "chunks-m", set(), "x", now)
    assert versions.removable({**building, "at": now - versions.ABANDONED_S - 1}, "chunks-m",
                              set(), "x", now)
    assert len(versions.version_name("chunks-" + "m" * 80, "f" * 16)) <= 63


def test_a_chroma_url_with_credentials_is_refused_without_showing_them() -> None:
    from llmops_pipelines.errors import SettingsError
    from llmops_pipelines.rag.chroma_client import chroma_client

    with pytest.raises(SettingsError, match=r"'https://\*\*\*@host:8000' is not") as refused:
        chroma_client(path=None, url="https://bob:pw-SECRET@host:8000")
    assert "SECRET" not in str(refused.value)
