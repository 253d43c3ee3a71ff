"""`make bench`: run every benchmark (or those named) and print their ratios."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import (
    conversations,
    curation,
    embedder,
    engine,
    incremental,
    rag,
    retrieval,
    scale,
    tracing,
    validity,
)

BENCHES = {"engine": engine.run, "embedder": embedder.run, "rag": rag.run,
           "retrieval": retrieval.run, "curation": curation.run, "incremental": incremental.run,
           "validity": validity.run, "scale": scale.run,
           "tracing": tracing.run, "conversations": conversations.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", choices=[*BENCHES, []], help="benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    results = {}
    for name in args.names or list(BENCHES):
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        results[name] = BENCHES[name](quick=args.quick)
        results[name]["bench_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(results[name], indent=2), flush=True)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
