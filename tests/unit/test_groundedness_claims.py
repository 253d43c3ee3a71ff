"""Claim-level groundedness with the real MiniLM embedder: contradictions caught, paraphrases kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_pipelines.evaluation.metrics.claims import (
    check_absence,
    conditions,
    names,
    negations,
)
from llmops_pipelines.evaluation.metrics.groundedness import METHOD, groundedness
from llmops_pipelines.evaluation.metrics.text import quantities, same_quantity
from llmops_pipelines.evaluation.validity.corpus import chunks
from llmops_pipelines.providers.local_embed import MiniLMEmbedder

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "datasets" / "docs"


@pytest.fixture(scope="module")
def embed() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def doc(doc_id: str) -> list[tuple[str, str]]:
    """A document's chunks as retrieved contexts: (doc_id, text), labelled doc#n in reasons."""
    return [(doc_id, c) for c in chunks((DOCS / f"{doc_id}.md").read_text(encoding="utf-8"))]


def test_fast_charging_contradiction_is_caught_and_named(embed) -> None:
    # The demo's champion answer, scored 1.0 "1/1 sentences supported" by the v1 heuristic.
    answer = "No. Fast charging reduces wear and can be used for daily rides."
    contexts = doc("charging-safety")
    faq = next(n for n, (_, text) in enumerate(contexts, start=1) if "## FAQ" in text)
    score = groundedness(answer, contexts, embed)
    assert score.value == 0.0
    assert score.reason.startswith("0/1 sentences supported; contradicted: 'Fast charging")
    assert f"contradicts [charging-safety#{faq}]: 'There is no fast-charge mode'" in score.reason
    # The rule it replaced (cosine + bare numbers) calls the same answer supported.
    before = groundedness(answer, contexts, embed, claim_checks=False)
    assert (before.value, before.reason) == (1.0, "1/1 sentences supported")


def test_the_method_is_labelled_a_heuristic() -> None:
    assert "heuristic" in METHOD


# answer, document, expected value, a piece of the expected reason ("" = fully supported)
CASES = [
    # supported: copied, converted units, paraphrased (contraction, synonym, clause order)
    ("The battery weighs 3.5 kg, so hold it firmly.", "ridgeline-e1-battery", 1.0, ""),
    ("A full charge from empty takes about 300 minutes with the included 4 A charger.",
     "ridgeline-e1-battery", 1.0, ""),
    ("Points can't be exchanged for cash.", "loyalty-program", 1.0, ""),
    ("You can return it within 30 days of delivery if you're not happy with your purchase.",
     "returns-and-refunds", 1.0, ""),
    ("Replacement Ridgeline E1 batteries are priced at $749.", "ridgeline-e1-battery", 1.0, ""),
    # contradicted: number, unit, entity, negation, condition
    ("Replacement Ridgeline E1 batteries cost USD 947.", "ridgeline-e1-battery", 0.0,
     "(the answer says 'USD 947')"),
    ("With the included 4 A charger, a full charge from empty takes about 5 minutes.",
     "ridgeline-e1-battery", 0.0, "(the answer says '5 minutes')"),
    ("Replacement Commuter C3 batteries cost USD 749.", "ridgeline-e1-battery", 0.0,
     "contradicts [ridgeline-e1-battery#7]: names 'E1', not 'C3'"),
    ("E08 means the motor is overheating: stop riding and let it cool for 15 minutes.",
     "motor-error-codes", 0.0, "names 'E07', not 'E08'"),
    ("The Commuter C3 does not have a built-in tracker.", "theft-protection", 0.0,
     "contradicts [theft-protection#1]: 'The tracker is built into the frame of the Ridgeline"),
    ("Points can be exchanged for cash.", "loyalty-program", 0.0,
     "contradicts [loyalty-program#"),
    ("Let a cold battery warm up indoors for at most 1 hour before charging.",
     "charging-safety", 0.0, "contradicts [charging-safety#"),
    ("Turn the key anticlockwise to lock and remove it.", "ridgeline-e1-battery", 0.0,
     "contradicts [ridgeline-e1-battery#3]: 'Turn the key clockwise to lock and remove it.'"),
    # unsupported: a sentence of another document
    ("Inflate the tyres to 2.5 bar before every ride.", "loyalty-program", 0.0, "unsupported"),
]


@pytest.mark.parametrize(("answer", "doc_id", "value", "reason"), CASES)
def test_fixed_cases(embed, answer: str, doc_id: str, value: float, reason: str) -> None:
    score = groundedness(answer, doc(doc_id), embed)
    assert score.value == value, score.reason
    if reason:
        assert reason in score.reason
    else:
        assert score.reason == "1/1 sentences supported"


def test_half_contradicted_answer_names_the_failing_sentence(embed) -> None:
    answer = "The battery weighs 3.5 kg. It retains at least 70% of its capacity after 80 cycles."
    score = groundedness(answer, doc("ridgeline-e1-battery"), embed)
    assert score.value == 0.5
    assert score.reason.startswith("1/2 sentences supported; contradicted: 'It retains")
    assert "'800' (the answer says '80')" in score.reason


# ---------------------------------------------------------------- the checks, without embeddings

def test_quantities_convert_units_and_spread_a_range_unit() -> None:
    a, b = quantities("4.5 h"), quantities("270 minutes")
    assert same_quantity(a[0], b[0])
    assert not same_quantity(quantities("4.5 h")[0], quantities("45 min")[0])
    low, high = quantities("Range: 40–95 km")
    assert (low.dimension, low.base, high.base) == ("length", 40000.0, 95000.0)
    assert quantities("three hours")[0].base == 10800.0
    # A bare number counts something: a 6-digit code is not 6 m.
    assert not same_quantity(quantities("the 6-digit code")[0], quantities("within 6 m")[0])
    assert same_quantity(quantities("USD 3,499")[0], quantities("$3499")[0])


def test_negations_read_contractions_and_negated_bounds() -> None:
    assert negations("Points can't be exchanged") == negations("Points cannot be exchanged") == 1
    assert negations("It isn't covered") == 1 and negations("It is covered") == 0
    # "no less than" is a bound, not a negation: the same as "at least".
    assert negations("wait no less than 15 minutes") == 0
    assert conditions("no less than 15 minutes") == conditions("at least 15 minutes")


def test_names_and_absence() -> None:
    assert {"E1", "LD-2", "E07"} <= names("The Ridgeline E1 shows E07 on the LD-2 display.")
    found = check_absence("Fast charging can be used daily.",
                          [_passage("charging-safety#6", "There is no fast-charge mode.")])
    assert found is not None and found.verdict == "contradicted"
    # One shared word is not enough, and a claim that itself negates agrees.
    assert check_absence("Charge indoors.", [_passage("d#1", "There is no charge mode.")]) is None
    assert check_absence("There is no fast-charge mode.",
                         [_passage("d#1", "There is no fast-charge mode.")]) is None


def _passage(label: str, text: str):
    from llmops_pipelines.evaluation.metrics.claims import Passage

    return Passage(label, text)
