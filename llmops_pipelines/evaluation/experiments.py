"""assets/experiments.yaml: named candidate grids = prompts x models (any endpoints) x params.

`default` names the experiment a run evaluates unless told otherwise. The model reference
`default` is the run's own chat model on the run's endpoint (LLMOPS_PROVIDER, LLMOPS_CHAT_MODEL),
which keeps today's candidates, and so their cache keys, exactly as they were.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_pipelines.providers.catalog import NAME, Catalog, CatalogModel
from llmops_pipelines.providers.yaml_lines import Located, load_located

DEFAULT_MODEL = "default"
GRID_PARAMS = ("temperature", "max_tokens", "top_k", "retrieval")
EXPERIMENT_KEYS = {"description", "prompts", "models", "params", "embedding", "judge"}


@dataclass(frozen=True)
class Experiment:
    name: str
    prompts: tuple[str, ...] | None  # None: every prompt in assets/prompts
    models: tuple[CatalogModel | None, ...]  # None: the run's default chat model
    params: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    embedding: CatalogModel | None = None
    judge: CatalogModel | None = None
    description: str = ""

    def param_grid(self) -> list[dict[str, Any]]:
        """Every combination of the listed parameter values, in file order ([{}] when none)."""
        names = list(self.params)
        return [dict(zip(names, values, strict=True))
                for values in itertools.product(*(self.params[n] for n in names))]


@dataclass(frozen=True)
class Experiments:
    default: str
    experiments: dict[str, Experiment]
    path: str

    def get(self, name: str | None) -> Experiment:
        """The named experiment (the file's default when None), or an error listing the names."""
        key = name or self.default
        if key not in self.experiments:
            raise ValueError(f"no experiment {key!r} in {self.path}; defined: "
                             f"{sorted(self.experiments)}")
        return self.experiments[key]


def _refs(doc: Located, catalog: Catalog, value: Any, where: str, role: str,
          ) -> tuple[CatalogModel | None, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise doc.error("a non-empty list of model references (endpoint/model or 'default')", where)
    out: list[CatalogModel | None] = []
    for i, ref in enumerate(value):
        out.append(None if ref == DEFAULT_MODEL else _ref(doc, catalog, ref, f"{where}.{i}", role))
    return tuple(out)


def _ref(doc: Located, catalog: Catalog, ref: str, where: str, role: str) -> CatalogModel:
    try:
        return catalog.resolve(ref, role)
    except ValueError as exc:
        raise doc.error(str(exc), where) from exc


def _experiment(doc: Located, catalog: Catalog, name: str, spec: Any) -> Experiment:
    where = f"experiments.{name}"
    if not NAME.match(name) or not isinstance(spec, dict):
        raise doc.error("an experiment is a mapping under a lower-case name", where)
    unknown = sorted(set(spec) - EXPERIMENT_KEYS)
    if unknown:
        raise doc.error(f"unknown keys {unknown}; expected some of {sorted(EXPERIMENT_KEYS)}", where)
    prompts = spec.get("prompts", "all")
    if prompts != "all" and not (isinstance(prompts, list) and prompts
                                 and all(isinstance(p, str) for p in prompts)):
        raise doc.error("prompts is 'all' or a list of prompt names", f"{where}.prompts")
    params = spec.get("params") or {}
    if not isinstance(params, dict) or not set(params) <= set(GRID_PARAMS):
        raise doc.error(f"params may set {list(GRID_PARAMS)}, each to a value or a list",
                        f"{where}.params")
    grid = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in params.items()}
    embedding, judge = spec.get("embedding"), spec.get("judge")
    return Experiment(
        name=name, prompts=None if prompts == "all" else tuple(prompts),
        models=_refs(doc, catalog, spec.get("models", [DEFAULT_MODEL]), f"{where}.models", "chat"),
        params=grid,
        embedding=_ref(doc, catalog, embedding, f"{where}.embedding", "embedding")
        if embedding else None,
        judge=_ref(doc, catalog, judge, f"{where}.judge", "judge") if judge else None,
        description=str(spec.get("description") or ""))


def load_experiments(path: Path, catalog: Catalog) -> Experiments:
    """Parse the experiments file against the catalog; errors name the file, line and key."""
    doc = load_located(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    specs = data.get("experiments")
    if not isinstance(specs, dict) or not specs:
        raise doc.error("needs an 'experiments' mapping of name -> grid", "experiments")
    experiments = {str(n): _experiment(doc, catalog, str(n), s) for n, s in specs.items()}
    default = data.get("default", next(iter(experiments)))
    if default not in experiments:
        raise doc.error(f"default {default!r} is not an experiment here; defined: "
                        f"{sorted(experiments)}", "default")
    return Experiments(str(default), experiments, doc.path)
