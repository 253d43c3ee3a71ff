"""Text helpers shared by the metrics: SQuAD normalisation, sentences, numbers."""

from __future__ import annotations

import re
import string

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
