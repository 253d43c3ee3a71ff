"""PII scrubbing: patterns for free text, field names for records; every replacement is counted."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
# 13-19 digits in groups; only a Luhn-valid run counts, so order and part numbers survive.
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
# International (+CC ...), bracketed area codes, or three groups ending in 3-4 digits: that last
# group keeps ISO dates (2023-01-05), versions and measurements out.
# Not next to another digit group either: that would be part of a longer number.
PHONE = re.compile(
    r"(?<![\w+/.-])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|(?:1[ .-])?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}"  # North American, with or without the 1- trunk
    r"|\(\d{2,5}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|\d{2,5}[ .-]\d{3,4}[ .-]\d{3,4})(?![\w/-])(?![ .-]\d)")
_STREET_TYPES = ("Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|"
                 "Place|Pl|Terrace|Parkway|Pkwy|Highway|Hwy|Square|Sq|Strasse|Straße")
# "123 Main St" (+ ", Town Name" + ", 12345"): the street type word is what makes it an address.
ADDRESS = re.compile(rf"(?<![\w-])\d{{1,6}}[a-zA-Z]?\s+(?:[A-Z][\w'-]*\.?\s+){{1,4}}"
                     rf"(?:{_STREET_TYPES})\b\.?(?:,\s*[A-Z][\w]*(?:[ \t]+[A-Z][\w]*){{0,3}})?"
                     rf"(?:,?[ \t]*\d{{5}}(?:-\d{{4}})?)?")
PATTERNS: dict[str, re.Pattern[str]] = {"email": EMAIL, "card": CARD, "ssn": SSN, "phone": PHONE,
                                        "address": ADDRESS}
# Field names (lower case, no separators) whose whole value is personal, whatever it looks like.
FIELD_KINDS = {
    **dict.fromkeys(("email", "emailaddress", "mail"), "email"),
    **dict.fromkeys(("phone", "phonenumber", "mobile", "telephone", "tel", "fax"), "phone"),
    **dict.fromkeys(("address", "streetaddress", "street", "homeaddress", "addressline1",
                     "addressline2", "postaladdress"), "address"),
    **dict.fromkeys(("creditcard", "cardnumber", "ccnumber"), "card"),
    **dict.fromkeys(("ssn", "socialsecuritynumber", "nationalid"), "ssn"),
    **dict.fromkeys(("firstname", "lastname", "fullname", "surname", "givenname", "middlename"),
                    "name"),
    **dict.fromkeys(("dob", "dateofbirth", "birthdate", "birthday"), "birthdate"),
}

PII_KINDS = ("email", "phone", "card", "ssn", "address", "name", "birthdate")


def placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _valid(kind: str, match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    if kind == "card":
        return luhn_ok(digits)
    if kind == "phone":
        return 7 <= len(digits) <= 15
    return True


def find(text: str, allow: Iterable[str] = ()) -> Counter[str]:
    """PII occurrences per kind in text, without changing it (what the checks use)."""
    found: Counter[str] = Counter()
    scrub(text, found, allow)
    return found


def scrub(text: str, counts: Counter[str], allow: Iterable[str] = ()) -> str:
    """Replace every PII match with [KIND]; counts[kind] goes up per replacement."""
    allowed = set(allow)
    for kind, pattern in PATTERNS.items():
        def replace(m: re.Match[str], kind: str = kind) -> str:
            if m.group(0) in allowed or not _valid(kind, m.group(0)):
                return m.group(0)
            counts[kind] += 1
            return placeholder(kind)
        text = pattern.sub(replace, text)
    return text


def field_kind(name: str) -> str | None:
    """The PII kind a record field holds by its name (firstName, e-mail, Phone_Number...)."""
    return FIELD_KINDS.get(re.sub(r"[^a-z0-9]", "", name.lower()))


def scrub_record(record: Any, counts: Counter[str]) -> Any:
    """A JSON-like value with personal fields replaced by [KIND], recursively."""
    if isinstance(record, dict):
        out = {}
        for key, value in record.items():
            kind = field_kind(str(key))
            if kind and value not in (None, "", [], {}):
                counts[kind] += 1
                out[key] = placeholder(kind)
            else:
                out[key] = scrub_record(value, counts)
        return out
    if isinstance(record, list):
        return [scrub_record(v, counts) for v in record]
    return record
