"""Text helpers shared by the metrics: SQuAD normalisation, sentences, numbers, quantities."""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def squad_tokens(text: str) -> list[str]:
    """Lowercased tokens without punctuation or articles, as the SQuAD F1 defines them."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return text.split()


def sentences(text: str) -> list[str]:
    """Sentences (and lines) with at least two words; bullets and headings count as one each."""
    parts = (p.strip(" -*•#\t") for p in _SENTENCE.split(text))
    return [p for p in parts if len(p.split()) >= 2]


def numbers(text: str) -> set[str]:
    """Numbers as written, with thousands separators removed: '1,200' and '1200' match."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


ABSTAIN = re.compile(r"\b(i don'?t know|i do not know|not (?:mentioned|specified|provided|in the)"
                     r"|no information|cannot find|can't find)\b", re.IGNORECASE)


def is_abstention(answer: str) -> bool:
    """An answer that declines to answer: grounded by definition, but not a correct answer."""
    return bool(ABSTAIN.search(answer)) and len(answer.split()) <= 25


# ---------------------------------------------------------------- claim parts (groundedness)

_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20,
                 "thirty": 30, "hundred": 100, "half": 0.5, "once": 1, "twice": 2}
# unit as written -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "ms": ("time", 0.001), "s": ("time", 1), "sec": ("time", 1), "secs": ("time", 1),
    "second": ("time", 1), "seconds": ("time", 1), "min": ("time", 60), "mins": ("time", 60),
    "minute": ("time", 60), "minutes": ("time", 60), "h": ("time", 3600), "hr": ("time", 3600),
    "hrs": ("time", 3600), "hour": ("time", 3600), "hours": ("time", 3600),
    "day": ("time", 86400), "days": ("time", 86400), "week": ("time", 604800),
    "weeks": ("time", 604800), "month": ("time", 2629800), "months": ("time", 2629800),
    "year": ("time", 31557600), "years": ("time", 31557600),
    "mm": ("length", 0.001), "cm": ("length", 0.01), "m": ("length", 1), "km": ("length", 1000),
    "metre": ("length", 1), "metres": ("length", 1), "meter": ("length", 1), "meters": ("length", 1),
    "kilometres": ("length", 1000), "kilometers": ("length", 1000), "in": ("length", 0.0254),
    "inch": ("length", 0.0254), "inches": ("length", 0.0254), "ft": ("length", 0.3048),
    "feet": ("length", 0.3048), "foot": ("length", 0.3048),
    "g": ("mass", 0.001), "kg": ("mass", 1), "grams": ("mass", 0.001), "kilograms": ("mass", 1),
    "lb": ("mass", 0.4536), "lbs": ("mass", 0.4536),
    "wh": ("energy", 1), "kwh": ("energy", 1000), "v": ("voltage", 1), "volts": ("voltage", 1),
    "a": ("current", 1), "amps": ("current", 1), "ah": ("charge", 1), "mah": ("charge", 0.001),
    "w": ("power", 1), "watts": ("power", 1), "kw": ("power", 1000), "nm": ("torque", 1),
    "km/h": ("speed", 1), "kmh": ("speed", 1), "kph": ("speed", 1), "mph": ("speed", 1.609),
    "%": ("percent", 1), "percent": ("percent", 1), "°c": ("celsius", 1), "°f": ("fahrenheit", 1),
    "psi": ("pressure", 1), "bar": ("pressure", 14.5038), "l": ("volume", 1),
    "litres": ("volume", 1), "liters": ("volume", 1), "ml": ("volume", 0.001),
    "lumen": ("light", 1), "lumens": ("light", 1), "usd": ("money", 1), "$": ("money", 1),
    "eur": ("money", 1), "€": ("money", 1), "times": ("times", 1),
}
_UNIT_WORDS = "|".join(sorted((re.escape(u) for u in UNITS if u not in ("$", "€", "usd", "eur")),
                              key=len, reverse=True))
_QUANTITY = re.compile(
    r"(?P<pre>\$|€|USD\s?|EUR\s?)?(?<![\w.-])(?P<num>\d+(?:,\d{3})*(?:\.\d+)?|"
    + "|".join(_WORD_NUMBERS) + r")(?![\w.,]\d)(?:\s?-?\s?(?P<unit>" + _UNIT_WORDS
    + r")(?![\w/]))?", re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    """A number as stated, with its unit's dimension and the value in that dimension's base unit."""

    text: str
    value: float
    dimension: str | None
    base: float
    noun: str | None = None  # for a bare number, the word it counts ('6-digit' -> 'digit')


_RANGE = re.compile(r"\s?(?:–|-|to)\s?$")
_NEXT_WORD = re.compile(r"[\s-]*([A-Za-z]+)")


def quantities(text: str) -> list[Quantity]:
    """Every number of a text with its unit when one follows ('4.5 h', '$749', 'three hours')."""
    out: list[Quantity] = []
    for m in _QUANTITY.finditer(text):
        raw = m.group("num").lower()
        value = float(_WORD_NUMBERS[raw]) if raw in _WORD_NUMBERS else float(raw.replace(",", ""))
        unit = (m.group("unit") or "").lower()
        if not unit and m.group("pre"):
            unit = "usd"
        if raw in _WORD_NUMBERS and not unit:
            continue  # "one of the", "half the time": not a stated quantity
        dimension, factor = UNITS.get(unit, (None, 1.0))
        noun = None
        if dimension is None:
            word = _NEXT_WORD.match(text, m.end())
            noun = stem(word.group(1)) if word and word.group(1).lower() not in STOP_WORDS else None
        out.append(Quantity(m.group(0).strip(), value, dimension, value * factor, noun))
    # "40–95 km": the unit after a range belongs to both ends.
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        gap = text[text.find(a.text) + len(a.text): text.find(b.text, text.find(a.text) + len(a.text))]
        if a.dimension is None and b.dimension and _RANGE.fullmatch(gap or "x"):
            out[i] = Quantity(a.text, a.value, b.dimension, b.base / b.value * a.value if b.value
                              else a.value)
    return out


def same_quantity(a: Quantity, b: Quantity) -> bool:
    """Equal after unit conversion; a bare number matches the same number with no other unit."""
    if a.dimension and b.dimension:
        return a.dimension == b.dimension and math.isclose(a.base, b.base, rel_tol=0.01)
    if a.dimension or b.dimension:
        bare = b if a.dimension else a
        return bare.noun is None and math.isclose(a.value, b.value, rel_tol=0.01)
    return math.isclose(a.value, b.value, rel_tol=0.01) and (
        a.noun is None or b.noun is None or a.noun == b.noun)


STOP_WORDS = frozenset((
    "a", "an", "the", "and", "or", "but", "if", "then", "so", "to", "of", "in", "on", "at", "by",
    "for", "with", "from", "into", "onto", "as", "is", "are", "was", "were", "be", "been",
    "being", "it", "its", "this", "that", "these", "those", "there", "their", "they", "them",
    "you", "your", "we", "our", "i", "me", "my", "he", "she", "his", "her", "can", "could",
    "will", "would", "should", "must", "may", "might", "do", "does", "did", "has", "have", "had",
    "not", "no", "nor", "never", "than", "also", "just", "only", "about", "up", "down", "out",
    "over", "off", "very", "more", "most", "less", "all", "any", "each", "every", "both",
    "either", "neither", "such", "which", "who", "whom", "what", "when", "where", "why", "how",
    "after", "before", "while", "once", "until", "unless", "per", "via"))


def stem(word: str) -> str:
    """A crude suffix fold ('charging', 'charges', 'charged' -> 'charg') for word matching."""
    word = word.lower()
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """Stemmed words that carry meaning (no stop words), numbers included, in order."""
    return [stem(w) for w in re.findall(r"[A-Za-z]+|\d+(?:\.\d+)?", text.replace("-", " "))
            if w.lower() not in STOP_WORDS]
