"""Cost: usage tokens x the price table in assets/pricing.yaml, in US dollars."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.metrics.metric import Score
from llmops_pipelines.providers.base import ChatResult


@dataclass(frozen=True)
class Price:
    input_per_m: float
    output_per_m: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1e6


@dataclass(frozen=True)
class Pricing:
    """Prices per model; fine-tuned models map to their base through prefixes."""

    models: dict[str, Price]
    prefixes: dict[str, str]
    path: str = "assets/pricing.yaml"

    @classmethod
    def load(cls, path: Path) -> Pricing:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"cannot read price table: {exc}", path=str(path)) from exc
        models = {}
        for name, spec in (data.get("models") or {}).items():
            try:
                price = Price(float(spec["input"]), float(spec["output"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"model {name!r} needs numeric 'input' and 'output' prices",
                                path=str(path), field=f"models.{name}") from exc
            for side, value in (("input", price.input_per_m), ("output", price.output_per_m)):
                # A negative price makes a candidate look cheaper than free and pass cost gates.
                if not math.isfinite(value) or value < 0:
                    raise DataError(f"a price must be a finite number >= 0 (USD per 1M tokens), "
                                    f"found {value}", path=str(path), field=f"models.{name}.{side}")
            models[str(name)] = price
        return cls(models, {str(k): str(v) for k, v in (data.get("prefixes") or {}).items()},
                   str(path))

    def price(self, model: str) -> Price:
        """The model's price; an unknown model is an error, never a silent $0."""
        if model in self.models:
            return self.models[model]
        # The longest matching prefix wins: 'ft:gpt-4o-mini' before 'ft:gpt-4o', in any order.
        for prefix, base in sorted(self.prefixes.items(), key=lambda kv: -len(kv[0])):
            if model.startswith(prefix) and base in self.models:
                return self.models[base]
        raise DataError(f"model {model!r} has no price; add it under 'models:'",
                        path=self.path, field="models")

    def name_for(self, model: str, endpoint: str) -> str:
        """The table's name for a model on an endpoint: 'endpoint/model' when listed, else model.

        Two endpoints may serve one model name at different prices (a hosted API, your own
        server): `ollama/llama3.2` in the table prices that endpoint's calls alone.
        """
        qualified = f"{endpoint}/{model}"
        return qualified if endpoint and qualified in self.models else model

    def priced_model(self, served: str, requested: str) -> str:
        """The name to price a call by: servers may answer with a dated name the table lacks.

        An endpoint's own price (`endpoint/model`, see name_for) wins over the served name.
        """
        if "/" in requested and requested in self.models:
            return requested
        return served if served in self.models else requested


def cost_score(pricing: Pricing, requested_model: str, result: ChatResult | None) -> Score:
    """USD of one call: usage tokens x the price table; NaN when the call failed."""
    if result is None:
        return Score.unscorable("no answer: the call failed, nothing was billed")
    model = pricing.priced_model(result.model, requested_model)
    usd = pricing.price(model).cost(result.input_tokens, result.output_tokens)
    return Score(usd, f"{result.input_tokens} in + {result.output_tokens} out tokens at {model} "
                      f"prices ({pricing.path})")
