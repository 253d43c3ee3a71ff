"""Deploying a candidate: `llmops promote`/`rollback`/`history` (manual, still recorded) and the
deployment's frozen prompt that serving and the nightly job answer with."""

from __future__ import annotations

import datetime as dt
import shutil
from typing import Any

import pandas as pd

from llmops_pipelines import tables
from llmops_pipelines.errors import LlmopsError, PromptError
from llmops_pipelines.promotion.decide import Contender, decide
from llmops_pipelines.promotion.gates import Gates
from llmops_pipelines.promotion.paired_bootstrap import keep_rows, rows_frame
from llmops_pipelines.promotion.registry import Deployment, Registry, RegistryApi
from llmops_pipelines.promotion.report import decision_record
from llmops_pipelines.prompts import (
    Prompt,
    check_prompt_name,
    load_prompt,
    load_prompts,
    name_slug,
    safe_name,
)
from llmops_pipelines.settings import Settings


def champion_contender(registry: RegistryApi, summaries: pd.DataFrame, rows: pd.DataFrame,
                       alias: str = "champion") -> Contender | None:
    """The alias's deployment, paired on today's eval rows when it was re-evaluated, else stored ones."""
    current = registry.get(alias)
    if current is None:
        return None
    mine = summaries[summaries["candidate_id"] == current.candidate_id]
    if len(mine):
        return Contender(mine.iloc[0].to_dict(), rows[rows["candidate_id"] == current.candidate_id])
    stored = registry.rows(current.deployment_id)
    return Contender(current.summary, rows_frame(stored) if stored else None)


def _latest(settings: Settings, name: str) -> pd.DataFrame:
    path = settings.tables_root / f"{name}.parquet"
    if not tables.exists(path):
        raise LlmopsError(f"{tables.masked(path)} does not exist: materialize evaluation_summary "
                          "first")
    return tables.read_table(path)


def _match(ids: list[str], key: str) -> str:
    found = [i for i in ids if i == key] or [i for i in ids if i.startswith(key)]
    if len(found) != 1:
        raise LlmopsError(f"candidate {key!r} matches {len(found)} of the evaluated candidates "
                          f"{ids}; give a full id or a unique prefix")
    return found[0]


def promote_candidate(settings: Settings, key: str, reason: str, *, alias: str = "champion",
                      actor: str | None = None) -> dict[str, Any]:
    """Move the alias to an evaluated candidate, whatever the gates say, recording what they said."""
    if not reason.strip():
        raise LlmopsError("a manual promotion needs --reason: it is kept in the history")
    summary_frame = _latest(settings, "evaluation_summary")
    rows_all = _latest(settings, "evaluation_rows")
    cid = _match(summary_frame["candidate_id"].tolist(), key)
    summary = summary_frame[summary_frame["candidate_id"] == cid].iloc[0].to_dict()
    rows = rows_all[rows_all["candidate_id"] == cid]
    registry = Registry.from_settings(settings)
    champion = champion_contender(registry, summary_frame, rows_all, alias)
    versions = {"data": str(rows["data_version"].iloc[0]), "index": str(rows["index_version"].iloc[0])}
    gates = Gates.load(settings.assets_dir / "gates.yaml", settings.provider)
    decision = decide(Contender(summary, rows), champion, gates)
    verdict = "gates agree" if decision.promote else \
        "overriding the gates: " + "; ".join(decision.reasons)
    record = decision_record(decision, versions)
    deployment_id = registry.promote(summary, versions, reason=f"manual: {reason} ({verdict})",
                                     alias=alias, actor=actor, rows=keep_rows(rows),
                                     metrics=record["gates"])
    return {"candidate_id": cid, "deployment_id": deployment_id, "alias": alias,
            "gates_agree": decision.promote, "gate_reasons": decision.reasons}


def render_history(events: list[dict[str, Any]]) -> str:
    """One line per event, newest first: when, what, which deployment, who and why."""
    if not events:
        return "(no history yet)"
    lines = []
    for e in events:
        when = dt.datetime.fromtimestamp(e["at"], tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        target = f"{e['candidate_id'] or '-'} ({e['deployment_id'] or '-'})"
        previous = f" <- was {e['previous_deployment_id']}" if e["previous_deployment_id"] else ""
        lines.append(f"{when}Z  {e['action']:<8} {e['alias'] or '-':<10} {target}{previous}  "
                     f"by {e['actor']}: {e['reason']}")
    return "\n".join(lines)


def snapshot_prompt(settings: Settings, deployment: Deployment) -> Prompt:
    """The deployment's prompt, kept under LLMOPS_HOME so later edits to assets/ change nothing."""
    # Registry rows are data: the id and the name are checked before they become a path.
    root = settings.home / "deployments"
    folder = root / safe_name(deployment.deployment_id, what="deployment id")
    kept = folder / f"{name_slug(check_prompt_name(deployment.prompt_name))}.prompty"
    if not kept.resolve().is_relative_to(root.resolve()):
        raise PromptError(f"deployment {deployment.deployment_id}: prompt name "
                          f"{deployment.prompt_name!r} cannot be used: it leaves {root}")
    allow = settings.prompt_env_allow
    if kept.exists():
        return load_prompt(kept, env_allow=allow)
    for prompt in load_prompts(settings.assets_dir / "prompts", env_allow=allow):
        if prompt.version == deployment.prompt_version:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(prompt.path, kept)
            return prompt
    raise PromptError(f"deployment {deployment.deployment_id} needs prompt "
                      f"{deployment.prompt_name!r} version {deployment.prompt_version}, which is "
                      f"no longer in {settings.assets_dir / 'prompts'}; restore it or promote "
                      "a re-evaluated candidate")
