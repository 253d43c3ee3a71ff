"""The `llmops` command: init, status, report, promote, rollback, history, serve and chat."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.settings import Settings
from llmops_pipelines.status import render_table, status


def _status(args: argparse.Namespace) -> int:
    report = status(Settings.from_env())
    print(json.dumps(report, indent=2) if args.json else render_table(report))
    return 0


def _report(args: argparse.Namespace) -> int:
    from llmops_pipelines.reporting.files import latest_report

    path = latest_report(Settings.from_env().home)
    print(path.as_uri() if args.url else path)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from llmops_pipelines.promotion.deploy import promote_candidate

    settings = Settings.from_env()
    done = promote_candidate(settings, args.candidate, args.reason, alias=args.alias)
    _snapshot(settings, args.alias)
    agree = "the gates agree" if done["gates_agree"] else \
        "OVERRIDING the gates: " + "; ".join(done["gate_reasons"])
    print(f"{args.alias}: {done['candidate_id']} ({done['deployment_id']}); {agree}")
    return 0


def _snapshot(settings: Settings, alias: str) -> None:
    # Keep the deployed prompt file now, so `llmops serve` still finds it after assets/ change.
    from llmops_pipelines.promotion.deploy import snapshot_prompt
    from llmops_pipelines.promotion.registry import Registry

    deployment = Registry.from_settings(settings).get(alias)
    if deployment is not None:
        try:
            snapshot_prompt(settings, deployment)
        except LlmopsError as exc:
            print(f"llmops: warning: {exc}", file=sys.stderr)


def _rollback(args: argparse.Namespace) -> int:
    from llmops_pipelines.promotion.registry import Registry

    registry = Registry.from_settings(Settings.from_env())
    registry.rollback(args.alias, reason=args.reason)
    now = registry.get(args.alias)
    print(f"{args.alias}: back to {now.candidate_id} ({now.deployment_id})" if now else "none")
    return 0


def _history(args: argparse.Namespace) -> int:
    from llmops_pipelines.promotion.deploy import render_history
    from llmops_pipelines.promotion.registry import Registry

    events = Registry.from_settings(Settings.from_env(), read_only=True).history(args.limit)
    print(json.dumps(events, indent=2) if args.json else render_history(events))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from llmops_pipelines.serving.run import serve

    serve(Settings.from_env(), args.host, args.port)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from llmops_pipelines.serving.run import chat

    settings = Settings.from_env()
    url = args.url or f"http://{settings.serve_host}:{settings.serve_port}/v1"
    return chat(settings, url, once=args.once)


def _init(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.tables_uri:  # shared tables live elsewhere: no empty local folder
        settings.path("tables", ".keep")
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster").expanduser().resolve()
    created = _init_instance(home)
    print(f"Dagster instance {'created' if created else 'ready'} at {home}")
    return 0


def _has_runs_table(db: Path) -> bool:
    if not db.exists():
        return False
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone() is not None


def _init_instance(home: Path) -> bool:
    """DAGSTER_HOME with its dagster.yaml and storage; True when this call created the storage."""
    import fcntl
    import subprocess

    # Two first runs on a fresh instance would both create its tables ("table runs already
    # exists"): it is created here, once, under a lock, before any run starts.
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".llmops-init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
        if _has_runs_table(home / "history" / "runs.db"):
            return False
        # The dagster CLI, not an import: only defs/ imports dagster.
        dagster = Path(sys.executable).with_name("dagster")
        done = subprocess.run([str(dagster) if dagster.exists() else "dagster", "instance",
                               "migrate"], env={**os.environ, "DAGSTER_HOME": str(home)},
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LlmopsError(f"creating the Dagster instance at DAGSTER_HOME={home} failed: "
                              f"{done.stderr.strip()[-800:]}")
        return True


def _storage_problem(exc: OSError | sqlite3.Error) -> str:
    """What a failed read or write under LLMOPS_HOME means, naming the folder."""
    try:
        home = Settings.from_env().home
    except LlmopsError:
        return str(exc)
    where = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and where and not str(where).startswith(str(home)):
        return str(exc)  # not about our state (a port in use, a missing file elsewhere)
    existing = next((p for p in (home, *home.parents) if p.exists()), home)
    why = f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
    if not os.access(existing, os.W_OK):
        return (f"LLMOPS_HOME {home} is read-only ({why}); this command writes state there: "
                "point LLMOPS_HOME at a writable folder")
    return f"cannot use LLMOPS_HOME {home}: {why}" + (f" ({where})" if where else "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create LLMOPS_HOME and the Dagster instance storage "
                                    "(DAGSTER_HOME) before the first run")
    p.set_defaults(func=_init)
    p = sub.add_parser("status", help="the champion and the latest evaluation per candidate")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_status)
    p = sub.add_parser("report", help="the path of the latest evaluation report (HTML, offline)")
    p.add_argument("--url", action="store_true", help="print it as a file:// URL")
    p.set_defaults(func=_report)
    p = sub.add_parser("promote", help="make an evaluated candidate the champion (manual override)")
    p.add_argument("candidate", help="candidate id (or a unique prefix) from evaluation_summary")
    p.add_argument("--reason", required=True, help="why: kept in the history")
    p.add_argument("--alias", default="champion", choices=["champion", "challenger"])
    p.set_defaults(func=_promote)
    p = sub.add_parser("rollback", help="champion <- the champion before it")
    p.add_argument("--reason", default="manual rollback", help="why: kept in the history")
    p.add_argument("--alias", default="champion", choices=["champion", "challenger"])
    p.set_defaults(func=_rollback)
    p = sub.add_parser("history", help="every promotion, rejection and rollback, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_history)
    p = sub.add_parser("serve", help="serve the champion on an OpenAI-compatible endpoint")
    p.add_argument("--host", default=None, help="default LLMOPS_SERVE_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default LLMOPS_SERVE_PORT (8000)")
    p.set_defaults(func=_serve)
    p = sub.add_parser("chat", help="a terminal client for `llmops serve`")
    p.add_argument("--url", default=None, help="default http://LLMOPS_SERVE_HOST:PORT/v1")
    p.add_argument("--once", default=None, help="ask one question and exit")
    p.set_defaults(func=_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except LlmopsError as exc:
        print(f"llmops: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"llmops: error: {_storage_problem(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
