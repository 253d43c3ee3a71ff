"""Claim-level checks of one answer sentence against the context sentences that match it best.

Heuristics, not inference: a number (after unit conversion), a name, a negation or a
comparison/condition word in the claim that the matching context sentence states otherwise.
Each check returns a Finding naming the context passage it contradicts, or None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llmops_pipelines.evaluation.metrics.text import (
    STOP_WORDS,
    content_words,
    quantities,
    same_quantity,
    stem,
)


@dataclass(frozen=True)
class Passage:
    """A context sentence and the retrieved chunk it came from ('doc#n': the n-th chunk)."""

    label: str
    text: str


@dataclass(frozen=True)
class Finding:
    verdict: str  # "contradicted" or "unsupported"
    detail: str


def _quote(text: str, limit: int = 70) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# ---------------------------------------------------------------- numbers

def check_numbers(claim: str, aligned: Passage, nearby: Sequence[Passage],
                  raw: Sequence[str] = ()) -> Finding | None:
    """Every quantity of the claim stated by a context sentence close to it (units converted).

    A bare number (no unit, nothing it counts) may come from anywhere in the `raw` context
    text, list numbering and fragments included: it says too little to place.
    """
    stated = [q for p in nearby for q in quantities(p.text)]
    own = quantities(claim)
    loose = {q.value for text in raw for q in quantities(text)}
    for q in own:
        if any(same_quantity(q, c) for c in stated):
            continue
        if q.dimension is None and q.noun is None and q.value in loose:
            continue
        rival = [c for c in quantities(aligned.text) if c.dimension == q.dimension
                 and not any(same_quantity(c, x) for x in own)]
        if rival:
            return Finding("contradicted", f"contradicts [{aligned.label}]: {_quote(rival[0].text)}"
                                           f" (the answer says {_quote(q.text)})")
        return Finding("unsupported", f"numbers [{q.text!r}] not in context")
    return None


# ---------------------------------------------------------------- names

_CODE = re.compile(r"\b[A-Z]{1,4}-?\d+[A-Za-z]?\b")
_CAPITAL = re.compile(r"(?<=[a-z,;:] )[A-Z][a-z]+(?:[A-Z][a-z]+)*\b")


def names(text: str) -> set[str]:
    """Model codes ('E1', 'LD-2', 'E07') and capitalised words inside a sentence ('Commuter')."""
    return set(_CODE.findall(text)) | set(_CAPITAL.findall(text))


def _shape(name: str) -> str:
    return re.sub(r"\d+", "9", re.sub(r"[A-Z]", "A", name)) if _CODE.fullmatch(name) else "Word"


def check_names(claim: str, aligned: Passage, context: Sequence[Passage]) -> Finding | None:
    """A name the context never uses, or one the matching sentence replaces with another."""
    everywhere = " ".join(p.text for p in context)
    own, theirs = names(claim), names(aligned.text)
    for name in sorted(own - theirs):
        rivals = sorted(n for n in theirs - own if _shape(n) == _shape(name) and _CODE.fullmatch(n))
        if rivals and _CODE.fullmatch(name):
            return Finding("contradicted", f"contradicts [{aligned.label}]: names {rivals[0]!r}, "
                                           f"not {name!r}")
        if not re.search(rf"\b{re.escape(name)}\b", everywhere, re.IGNORECASE):
            return Finding("unsupported", f"names {name!r} not in context")
    return None


# ---------------------------------------------------------------- negation and polarity

# Double negatives and negated comparatives first, so they read as the bound they state.
_NORMALISE = [(re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\bno (?:less|fewer) than\b", "at least"), (r"\bnot (?:less|fewer) than\b", "at least"),
    (r"\bno more than\b", "at most"), (r"\bnot more than\b", "at most"),
    (r"\bnot exceed(?:ing)?\b", "at most"), (r"\bnot (?:until|before)\b", "only after"),
    (r"\bcannot\b", "can not"), (r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"),
    (r"n't\b", " not"),
)]
_NEGATION = re.compile(r"\b(not|no|never|none|nothing|nobody|nowhere|neither|without|unable|"
                       r"lacks?|free of)\b", re.IGNORECASE)


def normalise(text: str) -> str:
    """Contractions and negated comparisons spelled out ("doesn't" -> "does not", ...)."""
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text


def negations(text: str) -> int:
    """How many negation cues a sentence holds ('neither … nor' counts once)."""
    return len(_NEGATION.findall(normalise(text)))


def overlap(claim: str, passage: str) -> float:
    """Share of the claim's content words that the passage also has."""
    own = set(content_words(claim))
    return len(own & set(content_words(passage))) / len(own) if own else 0.0


_CLAUSE = re.compile(r"[,;:()]|\s[-–]\s|\s(?:and|but|so|which|because|while|or|then|whereas|if"
                     r"|when|unless)\s",
                     re.IGNORECASE)


def clauses(text: str) -> list[str]:
    """A sentence cut at punctuation and conjunctions: where a negation's reach usually ends."""
    return [c.strip() for c in _CLAUSE.split(normalise(text)) if len(content_words(c)) >= 1]


def check_polarity(claim: str, aligned: Passage, min_overlap: float = 0.5) -> Finding | None:
    """A clause of the claim negates the matching clause of the context sentence, or the reverse."""
    theirs = clauses(aligned.text)
    if not theirs:
        return None
    for own in clauses(claim):
        match = max(theirs, key=lambda c: overlap(own, c))
        if overlap(own, match) >= min_overlap and negations(own) != negations(match):
            return Finding("contradicted", f"contradicts [{aligned.label}]: {_quote(aligned.text)}")
    return None


_ABSENT = re.compile(r"\b(?:there (?:is|are) no|(?:has|have|with) no|without|no)\s+"
                     r"((?:[\w-]+\s+){0,2}[\w-]+)", re.IGNORECASE)


def _noun_phrase(words: str) -> list[str]:
    # The words right after the cue up to the first function word: "no fast-charge mode" ->
    # [fast, charg, mod]; "no points are earned" -> [point].
    out = []
    for word in re.findall(r"[\w]+", words.replace("-", " ")):
        if word.lower() in STOP_WORDS or word.isdigit():
            break
        out.append(stem(word))
    return out


def check_absence(claim: str, context: Sequence[Passage]) -> Finding | None:
    """The claim affirms something a context sentence says does not exist ('no fast-charge mode')."""
    if negations(claim):
        return None
    words = set(content_words(claim))
    for passage in context:
        for m in _ABSENT.finditer(passage.text):
            phrase = _noun_phrase(m.group(1))
            # Two words or more, the first one included: one shared word is too common a hit.
            if len(phrase) >= 2 and phrase[0] in words and len(set(phrase) & words) >= 2:
                return Finding("contradicted", f"contradicts [{passage.label}]: "
                                               f"{_quote(m.group(0))}")
    return None


# ---------------------------------------------------------------- comparisons and conditions

_OPPOSITES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bound": (("at least", "minimum", "more than", "greater than", "longer than", "higher than",
               "above", "over", "exceeds", "beyond", "or more", r"after \d+", "only after"),
              ("at most", "maximum", "less than", "fewer than", "shorter than", "lower than",
               "below", "under", "up to", "or less", r"before \d+", "no later than")),
    "window": (("within", "no later than", "by the end of"), ("after", "beyond", "later than")),
    "order": (("before", "prior to", "earlier"), ("after", "later", "afterwards")),
    "version": (("or later", "or newer", "or higher", "or above"),
                ("or earlier", "or older", "or lower", "or below")),
    "place": (("inside", "indoors", "internal"), ("outside", "outdoors", "external")),
    "side": (("front", "forward"), ("rear", "back", "backwards")),
    "hand": (("left",), ("right",)),
    "turn": (("clockwise",), ("anticlockwise", "counterclockwise", "counter-clockwise")),
    "level": (("full", "fully charged"), ("empty", "flat")),
    "heat": (("hot", "warm", "heat", "warmer"), ("cold", "cool", "freezing", "colder")),
    "change": (("increase", "increases", "raise", "raises"),
               ("decrease", "decreases", "reduce", "reduces")),
    "height": (("higher", "upper", "top", "taller"), ("lower", "bottom", "shorter")),
    "length": (("longer",), ("shorter",)),
    "size": (("larger", "bigger", "wider", "thicker", "heavier"),
             ("smaller", "narrower", "thinner", "lighter")),
    "speed": (("faster", "quicker"), ("slower",)),
    "quality": (("better",), ("worse",)),
    "state": (("wet",), ("dry",)),
}
_PATTERNS = {(cls, side): re.compile(r"\b(" + "|".join(w.replace(" ", r"\s+") for w in words)
                                     + r")\b", re.IGNORECASE)
             for cls, pair in _OPPOSITES.items() for side, words in enumerate(pair)}


def conditions(text: str) -> dict[tuple[str, int], int]:
    """How often each (class, side) of comparison or condition words occurs in a sentence."""
    text = normalise(text)
    counts = {key: len(pattern.findall(text)) for key, pattern in _PATTERNS.items()}
    return {key: n for key, n in counts.items() if n}


def check_conditions(claim: str, aligned: Passage, min_overlap: float = 0.5) -> Finding | None:
    """More of one side and fewer of its opposite than the matching sentence: 'before' for 'after'."""
    if overlap(claim, aligned.text) < min_overlap:
        return None
    own, theirs = conditions(claim), conditions(aligned.text)
    for (cls, side), n in sorted(own.items()):
        opposite = (cls, 1 - side)
        if n > theirs.get((cls, side), 0) and own.get(opposite, 0) < theirs.get(opposite, 0):
            return Finding("contradicted", f"contradicts [{aligned.label}]: {_quote(aligned.text)}")
    return None


def find_problem(claim: str, aligned: Passage, nearby: Sequence[Passage],
                 context: Sequence[Passage], raw: Sequence[str] = ()) -> Finding | None:
    """The first check that fails, in order: numbers, names, absence, polarity, conditions.

    Numbers must be stated by a `nearby` sentence (the closest few): a number that the
    document states about something else does not support the claim.
    """
    return (check_numbers(claim, aligned, nearby, raw) or check_names(claim, aligned, context)
            or check_absence(claim, context) or check_polarity(claim, aligned)
            or check_conditions(claim, aligned))


__all__ = ["Finding", "Passage", "find_problem", "stem"]
