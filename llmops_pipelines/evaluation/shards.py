"""Shard planning: which candidates x question ranges each evaluation step answers.

Pure and dagster-free: the Dagster wiring (defs/evaluation_shards.py) turns each spec into one
step, so a distributed executor runs the shards on different workers. Shards come in plan order
(candidates in order, each one's questions in ranges), so concatenating their rows in that order
gives exactly the rows, in the order, that one `evaluate` over everything returns.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

MODES = ("off", "candidate")
MIXED = ""  # the endpoint of a shard run by the step without an endpoint pool
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
_MICRO_USD = 1e9  # budget shares are rounded down to a billionth of a dollar


@dataclass(frozen=True)
class ShardSpec:
    """One step's work: these candidates on the eval questions [start, stop), and its budget."""

    key: str  # the Dagster mapping key: letters, digits and underscores, unique in the plan
    index: int  # position in the plan: the merge concatenates shards in this order
    candidate_ids: tuple[str, ...]
    start: int  # the range of eval questions (in qa_id order, after LLMOPS_EVAL_LIMIT)
    stop: int
    endpoint: str  # the endpoint step that runs it (its pool); MIXED for the one without pool
    budget_usd: float | None  # its share of the run's max_cost_usd; None: no cap
    rows: int

    @property
    def questions(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "candidate_ids": list(self.candidate_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardSpec:
        return cls(**{**data, "candidate_ids": tuple(data["candidate_ids"])})


def safe_name(text: str) -> str:
    """`text` with every run of other characters as one underscore (op, output, mapping keys)."""
    return _UNSAFE.sub("_", text).strip("_") or "x"


def budget_shares(rows: Sequence[int], total_usd: float | None) -> list[float | None]:
    """Each shard's cap, proportional to its rows, rounded down so the sum never passes the total."""
    if total_usd is None:
        return [None] * len(rows)
    if len(rows) == 1:
        return [total_usd]  # one shard: today's cap exactly, and today's message
    whole = sum(rows) or 1
    return [math.floor(total_usd * n / whole * _MICRO_USD) / _MICRO_USD for n in rows]


def plan_shards(candidates: Sequence[tuple[str, str]], questions: int, mode: str,
                max_questions: int = 0, max_cost_usd: float | None = None,
                endpoints: Collection[str] = ()) -> tuple[list[ShardSpec], list[str]]:
    """The shards of a run, in plan order, and a warning per candidate sent to the mixed step.

    `candidates`: (candidate_id, endpoint) in the candidates table's order. `endpoints`: the
    endpoints that have a step of their own (read from the catalog when the code loaded).
    """
    if mode not in MODES:
        raise ValueError(f"eval shards {mode!r}: expected one of {MODES}")
    if questions <= 0 or not candidates:
        return [], []
    if mode == "off":
        ids = tuple(c for c, _ in candidates)
        share = budget_shares([len(ids) * questions], max_cost_usd)[0]
        return [ShardSpec("all", 0, ids, 0, questions, MIXED, share, len(ids) * questions)], []
    step = max_questions if max_questions > 0 else questions
    parts: list[tuple[str, str, int, int]] = []
    warnings: list[str] = []
    for candidate_id, endpoint in candidates:
        if endpoint not in endpoints:
            warnings.append(f"candidate {candidate_id}: endpoint {endpoint!r} has no shard step "
                            f"(the catalog changed since the code location loaded: reload it); "
                            "it runs in the step without an endpoint pool")
            endpoint = MIXED
        parts += [(candidate_id, endpoint, start, min(start + step, questions))
                  for start in range(0, questions, step)]
    shares = budget_shares([stop - start for _, _, start, stop in parts], max_cost_usd)
    width = len(str(len(parts) - 1))
    specs = []
    for i, ((cid, endpoint, start, stop), share) in enumerate(zip(parts, shares, strict=True)):
        # Readable in the UI's step list, unique by its number.
        key = f"s{i:0{width}d}_{safe_name(cid)[:40].rstrip('_')}_q{start}"
        specs.append(ShardSpec(key, i, (cid,), start, stop, endpoint, share, stop - start))
    return specs, warnings


def worker_identity() -> dict[str, Any]:
    """Where this process runs: the Dask worker's name inside one, else host and pid."""
    identity: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        from distributed import get_worker  # only there when the dask executor is installed

        identity["worker"] = str(get_worker().name)
    except (ImportError, ValueError):  # ValueError: not inside a Dask worker
        identity["worker"] = f"{identity['host']}:{identity['pid']}"
    return identity
