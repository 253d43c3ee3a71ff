"""Text normalisation shared by every curation stage: one canonical form, one comparison key."""

from __future__ import annotations

import re
import unicodedata

# Zero-width characters and the BOM change a hash without changing what anyone reads.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
# Every unicode space (no-break, thin, ideographic...) reads as a plain space; runs of spaces stay,
# since indentation carries meaning in markdown lists, code and YAML.
_SPACES = re.compile(r"[^\S\n\t ]")
# C0/C1 control characters other than tab and newline are noise from copy-paste or bad exports.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BLANK_RUNS = re.compile(r"\n{3,}")
_KEY_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFC unicode, unix newlines, plain spaces, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.translate(_INVISIBLE))
    lines = [_SPACES.sub(" ", line).rstrip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def normalise_inline(text: str) -> str:
    """A one-paragraph field (a question, an answer): normalised, every whitespace run one space."""
    return _WS.sub(" ", normalise(text)).strip()


def compare_key(text: str) -> str:
    """Case-, width- and punctuation-blind form for duplicate detection in any script."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WS.sub(" ", _KEY_PUNCT.sub(" ", folded)).strip()
