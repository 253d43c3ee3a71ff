"""assets/experiments.yaml: named candidate grids = prompts x models (any endpoints) x params.

`default` names the experiment a run evaluates unless told otherwise. The model reference
`default` is the run's own chat model on the run's endpoint (LLMOPS_PROVIDER, LLMOPS_CHAT_MODEL),
which keeps today's candidates, and so their cache keys, exactly as they were.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmops_pipelines.errors import PromptError
from llmops_pipelines.evaluation.candidates import Candidate, qualify
from llmops_pipelines.evaluation.input_mapping import InputMapping, parse_mapping
from llmops_pipelines.prompts import Prompt, check_prompt_name, load_prompt, name_slug
from llmops_pipelines.providers.catalog import NAME, Catalog, CatalogModel
from llmops_pipelines.providers.yaml_lines import Located, load_located

DEFAULT_MODEL = "default"
PROMPT_FILE_KEYS = {"file", "name", "inputs"}
GRID_PARAMS = ("temperature", "max_tokens", "top_k", "retrieval")
EXPERIMENT_KEYS = {"description", "prompts", "models", "params", "embedding", "judge"}


@dataclass(frozen=True)
class PromptRef:
    """A prompt of an experiment: one of ours by name, or a third-party file with a mapping."""

    name: str
    prompt: Prompt | None = None  # a third-party Prompty file, loaded as it is (lenient)
    mapping: InputMapping | None = None  # how its declared inputs are bound per row


@dataclass(frozen=True)
class Experiment:
    name: str
    prompts: tuple[PromptRef, ...] | None  # None: every prompt in assets/prompts
    models: tuple[CatalogModel | None, ...]  # None: the run's default chat model
    params: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    embedding: CatalogModel | None = None
    judge: CatalogModel | None = None
    description: str = ""

    def prompt_names(self) -> tuple[str, ...] | None:
        return None if self.prompts is None else tuple(p.name for p in self.prompts)

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


def _prompt_ref(doc: Located, entry: Any, where: str) -> PromptRef:
    if isinstance(entry, str) and entry:
        return PromptRef(entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise doc.error("a prompt is a name from assets/prompts or {file: path.prompty, "
                        "inputs: {input: source}}", where)
    unknown = sorted(set(entry) - PROMPT_FILE_KEYS)
    if unknown:
        raise doc.error(f"unknown keys {unknown}; expected {sorted(PROMPT_FILE_KEYS)}", where)
    # Relative to the experiments file: a third-party prompt is used where it lies, unchanged.
    path = (Path(doc.path).parent / entry["file"]).resolve()
    try:
        prompt = load_prompt(path, strict=False)
    except PromptError as exc:
        raise doc.error(f"cannot load {path}: {exc}", f"{where}.file") from exc
    name = entry.get("name") or name_slug(prompt.name)
    try:
        check_prompt_name(name)
    except PromptError as exc:
        raise doc.error(str(exc), f"{where}.name") from exc
    prompt = replace(prompt, name=name)
    mapping = parse_mapping(doc, f"{where}.inputs", entry.get("inputs") or {}, prompt)
    return PromptRef(name, prompt, mapping)


def _experiment(doc: Located, catalog: Catalog, name: str, spec: Any) -> Experiment:
    where = f"experiments.{name}"
    if not NAME.match(name) or not isinstance(spec, dict):
        raise doc.error("an experiment is a mapping under a lower-case name", where)
    unknown = sorted(set(spec) - EXPERIMENT_KEYS)
    if unknown:
        raise doc.error(f"unknown keys {unknown}; expected some of {sorted(EXPERIMENT_KEYS)}", where)
    prompts = spec.get("prompts", "all")
    if prompts != "all" and not (isinstance(prompts, list) and prompts):
        raise doc.error("prompts is 'all' or a list of prompt names and {file:, inputs:} entries",
                        f"{where}.prompts")
    refs = None if prompts == "all" else tuple(
        _prompt_ref(doc, entry, f"{where}.prompts.{i}") for i, entry in enumerate(prompts))
    params = spec.get("params") or {}
    if not isinstance(params, dict) or not set(params) <= set(GRID_PARAMS):
        raise doc.error(f"params may set {list(GRID_PARAMS)}, each to a value or a list",
                        f"{where}.params")
    grid = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in params.items()}
    embedding, judge = spec.get("embedding"), spec.get("judge")
    return Experiment(
        name=name, prompts=refs,
        models=_refs(doc, catalog, spec.get("models", [DEFAULT_MODEL]), f"{where}.models", "chat"),
        params=grid,
        embedding=_ref(doc, catalog, embedding, f"{where}.embedding", "embedding")
        if embedding else None,
        judge=_ref(doc, catalog, judge, f"{where}.judge", "judge") if judge else None,
        description=str(spec.get("description") or ""))


def load_experiments(path: Path, catalog: Catalog,
                     prompt_names: Collection[str] | None = None) -> Experiments:
    """Parse the experiments file against the catalog (and the names of our prompts, when
    given); errors name the file, line and key."""
    doc = load_located(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    specs = data.get("experiments")
    if not isinstance(specs, dict) or not specs:
        raise doc.error("needs an 'experiments' mapping of name -> grid", "experiments")
    experiments = {str(n): _experiment(doc, catalog, str(n), s) for n, s in specs.items()}
    for name, experiment in experiments.items():
        for i, ref in enumerate(experiment.prompts or ()):
            if ref.prompt is None and prompt_names is not None and ref.name not in prompt_names:
                raise doc.error(f"no prompt {ref.name!r} in assets/prompts; there are "
                                f"{sorted(prompt_names)}", f"experiments.{name}.prompts.{i}")
    default = data.get("default", next(iter(experiments)))
    if default not in experiments:
        raise doc.error(f"default {default!r} is not an experiment here; defined: "
                        f"{sorted(experiments)}", "default")
    return Experiments(str(default), experiments, doc.path)


def candidates_of(experiment: Experiment, ours: list[Prompt], default_models: list[str],
                  default_endpoint: str) -> list[Candidate]:
    """prompts x models x params, in file order; `default` stands for `default_models` (the
    run's chat model and its fine-tune) on the run's endpoint."""
    by_name = {p.name: p for p in ours}
    prompts: list[tuple[Prompt, InputMapping | None]] = (
        [(p, None) for p in ours] if experiment.prompts is None
        else [(ref.prompt, ref.mapping) if ref.prompt is not None else (by_name[ref.name], None)
              for ref in experiment.prompts])
    models: list[tuple[str, str]] = []
    for model in experiment.models:
        models += ([(m, default_endpoint) for m in default_models] if model is None
                   else [(model.name, model.endpoint)])
    grid = experiment.param_grid()
    return qualify([Candidate(prompt, name, params, endpoint, inputs=mapping)
                    for prompt, mapping in prompts for name, endpoint in models
                    for params in grid], default_endpoint)
