"""A read-only LLMOPS_HOME: `llmops status` and `history` say which folder, never a traceback.

Tests run as root here, and root writes through file modes, so the home is made read-only the
way a read-only volume is: a read-only bind mount in a private mount namespace (unshare -m),
visible to the one command under test only.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmops_pipelines.promotion.registry import Registry
from tests.support.eval_tables import candidate_rows, write_evaluation

REPO = Path(__file__).resolve().parents[2]


def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `llmops <args>` with `folder` mounted read-only for that process alone."""
    llmops = f"{shlex.quote(sys.executable)} -m llmops_pipelines.cli {shlex.join(args)}"
    where = shlex.quote(str(folder))
    script = (f"mount --bind {where} {where} && mount -o remount,bind,ro {where} {where} "
              f"&& exec {llmops}")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=REPO, text=True,
                          capture_output=True, env=dict(os.environ), timeout=120)


@pytest.fixture
def can_mount(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    ok = shutil.which("unshare") and subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {probe} {probe} && "
                                      f"mount -o remount,bind,ro {probe} {probe}"],
        capture_output=True).returncode == 0
    if not ok:
        pytest.skip("needs unshare -m and bind mounts (root in a container) to make a read-only "
                    "folder that root cannot write")


def _populated(home: Path) -> None:
    write_evaluation(home, candidate_rows("best@gpt-4o-mini#1", quality=0.6, groundedness=0.8,
                                          seed=1))
    Registry(home / "registry.sqlite").promote(
        {"candidate_id": "best@gpt-4o-mini#1", "prompt_name": "grounded_concise",
         "prompt_version": "pv", "model": "gpt-4o-mini"}, {"index": "i", "data": "d"},
        reason="test", actor="ci")


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["history"]])
def test_read_only_populated_home_reads_or_names_the_folder(can_mount, isolated_home: Path,
                                                            command: list[str]) -> None:
    _populated(isolated_home)
    done = _read_only(isolated_home, *command)
    assert "Traceback" not in done.stderr, done.stderr
    # Reading needs no write: the report comes out as usual.
    assert done.returncode == 0, done.stderr
    assert "best@gpt-4o-mini#1" in done.stdout


@pytest.mark.parametrize("command", [["status"], ["history"]])
def test_read_only_empty_home_names_the_folder(can_mount, isolated_home: Path,
                                               command: list[str]) -> None:
    # A home that was never used (no registry, no tables) on a read-only volume.
    for child in list(isolated_home.iterdir()):
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    done = _read_only(isolated_home, *command)
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode == 0:  # nothing to report is a fine answer too
        assert "none" in done.stdout.lower() or "no history" in done.stdout.lower()
    else:
        assert done.returncode == 2
        assert str(isolated_home) in done.stderr and "LLMOPS_HOME" in done.stderr


def test_read_only_home_promote_names_the_folder(can_mount, isolated_home: Path) -> None:
    _populated(isolated_home)
    done = _read_only(isolated_home, "promote", "best", "--reason", "x")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2
    assert str(isolated_home) in done.stderr and "read-only" in done.stderr
