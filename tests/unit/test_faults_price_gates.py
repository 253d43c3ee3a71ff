"""Bad lifecycle files are errors naming file and field: negative prices, empty gate thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_pipelines.errors import DataError
from llmops_pipelines.evaluation.metrics.cost import Pricing
from llmops_pipelines.promotion.gates import Gates

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("spec", "bad_field"), [
    ("{input: -0.15, output: 0.60}", "models.gpt-4o-mini.input"),
    ("{input: 0.15, output: -1}", "models.gpt-4o-mini.output"),
    ("{input: .nan, output: 0.60}", "models.gpt-4o-mini.input"),
    ("{input: 0.15, output: .inf}", "models.gpt-4o-mini.output"),
])
def test_a_negative_or_non_finite_price_names_file_and_field(tmp_path: Path, spec: str,
                                                             bad_field: str) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text(f"models:\n  gpt-4o-mini: {spec}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        Pricing.load(path)
    assert err.value.path == str(path)
    assert err.value.field == bad_field
    assert str(path) in str(err.value) and bad_field in str(err.value)


def test_zero_prices_are_allowed_for_local_models() -> None:
    pricing = Pricing.load(REPO / "assets" / "pricing.yaml")
    assert pricing.price("smollm2-135m-instruct").cost(1000, 1000) == 0.0


@pytest.mark.parametrize("section", ["thresholds: {}\n", "thresholds:\n", "thresholds: ~\n",
                                     "primary_metric: quality\n"])
def test_empty_thresholds_are_an_error(tmp_path: Path, section: str) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(section, encoding="utf-8")
    with pytest.raises(DataError) as err:
        Gates.load(path)
    assert err.value.field == "thresholds"
    assert str(path) in str(err.value) and "thresholds: none" in str(err.value)


def test_thresholds_none_explicitly_gates_on_the_champion_only(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("thresholds: none\n", encoding="utf-8")
    assert Gates.load(path).thresholds == {}


def test_a_provider_override_alone_is_not_empty(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("thresholds: none\nproviders:\n  local:\n    thresholds:\n"
                    "      coverage: {min: 0.5}\n", encoding="utf-8")
    assert Gates.load(path, "local").thresholds == {"coverage": {"min": 0.5}}
