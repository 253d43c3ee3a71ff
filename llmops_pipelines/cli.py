"""The `llmops` command: status now; promote, rollback, serve and chat grow here."""

from __future__ import annotations

import argparse
import json
import sys

from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.settings import Settings
from llmops_pipelines.status import render_table, status


def _status(args: argparse.Namespace) -> int:
    report = status(Settings.from_env())
    print(json.dumps(report, indent=2) if args.json else render_table(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_status = sub.add_parser("status", help="the champion and the latest evaluation per candidate")
    p_status.add_argument("--json", action="store_true", help="machine-readable output")
    p_status.set_defaults(func=_status)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LlmopsError as exc:
        print(f"llmops: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
