"""The benchmark's rewrite rules (pattern -> replacement), kept apart from the detector's word lists."""

from __future__ import annotations

import re
from collections.abc import Callable

Replacement = str | Callable[[re.Match[str]], str]
Rule = tuple[re.Pattern[str], Replacement]

_I = re.IGNORECASE


def _rule(pattern: str, repl: Replacement, flags: int = _I) -> Rule:
    return re.compile(pattern, flags), repl


_IMPERATIVE = ("Charge", "Keep", "Place", "Use", "Press", "Slide", "Turn", "Switch", "Insert",
               "Support", "Stop", "Let", "Remove", "Check", "Hold", "Store", "Clean", "Wipe", "Fit",
               "Ride", "Open", "Select", "Close", "Fold", "Lift", "Squeeze", "Restart", "Run",
               "Tighten", "Inflate", "Apply", "Wash", "Dry", "Contact", "Return", "Register",
               "Bring", "Send", "Pump", "Set", "Leave", "Lock", "Plug", "Unplug", "Wait", "Mount",
               "Attach", "Connect", "Update", "Install", "Replace", "Rinse", "Book", "Show")
_THIRD_PERSON = ("takes", "needs", "counts", "costs", "lasts", "covers", "includes", "means",
                 "stops", "reads", "shows", "holds", "uses", "requires", "works", "supports",
                 "weighs", "ships", "fits", "comes", "gives", "keeps", "protects", "charges",
                 "starts", "moves", "folds", "mounts", "plugs", "reduces", "lets", "drops",
                 "clears", "appears", "offers", "extends", "saves", "returns", "earns", "runs")

# Polarity: remove a negation when there is one (first rule that matches wins), else add one.
NEGATION_RULES: list[Rule] = [
    _rule(r"\b(does|do|did|is|are|was|were|will|should|must|could|would|has|have|need) not\b", r"\1"),
    _rule(r"\bcannot\b", "can"),
    _rule(r"\bwon't\b", "will"),
    _rule(r"\bcan't\b", "can"),
    _rule(r"\b(does|do|is|are|was|were|should|must|could|would|has|have)n't\b", r"\1"),
    _rule(r"\bnever\b", "always"),
    _rule(r"\bno longer\b", "still"),
    _rule(r"\bthere is no\b", "there is a"),
    _rule(r"\bno (?=[a-z])", ""),
    _rule(r"\bwithout\b", "with"),
    _rule(r"\bnot\b ?", ""),
    _rule(r"\b(is|are|was|were|will|should|must|can|could|may)\b", r"\1 not"),
    _rule(r"^(" + "|".join(_IMPERATIVE) + r")\b", lambda m: f"Do not {m[1].lower()}", 0),
    *[_rule(rf"\b{verb}\b", "does not " + (verb[:-2] if verb.endswith(("ches", "shes", "sses"))
                                           else verb[:-1]))
      for verb in _THIRD_PERSON],
]

_PAIRS = (("before", "after"), ("at least", "at most"), ("more than", "less than"),
          ("above", "below"), ("minimum", "maximum"), ("higher", "lower"), ("longer", "shorter"),
          ("earlier", "later"), ("indoors", "outdoors"), ("inside", "outside"),
          ("increases", "decreases"), ("faster", "slower"), ("left", "right"),
          ("front", "rear"), ("clockwise", "anticlockwise"), ("full", "empty"),
          ("warm", "cold"), ("up to", "at least"), ("within", "after"), ("or later", "or earlier"))

# Conditions and comparisons: each word into its opposite, both directions.
SWAPS: list[Rule] = [rule for a, b in _PAIRS
                     for rule in (_rule(rf"\b{a}\b", b), _rule(rf"\b{b}\b", a))
                     if not (a == "up to" and rule[1] == "up to")
                     and not (a == "within" and rule[1] == "within")]

_NUMBER_WORDS = {"2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
                 "8": "eight", "9": "nine"}

# Meaning-preserving rewrites: contractions, synonyms, a clause moved, a number spelled out.
PARAPHRASE_RULES: list[Rule] = [
    _rule(r"\bdoes not\b", "doesn't"), _rule(r"\bdo not\b", "don't"),
    _rule(r"\bis not\b", "isn't"), _rule(r"\bcannot\b", "can't"),
    _rule(r"\bwill not\b", "won't"), _rule(r"\bit is\b", "it's"),
    _rule(r"\byou will\b", "you'll"), _rule(r"\bthere is\b", "there's"),
    _rule(r"\babout\b", "around"), _rule(r"\bapproximately\b", "roughly"),
    _rule(r"\bimmediately\b", "right away"), _rule(r"\bcontact\b", "get in touch with"),
    _rule(r"\bpurchase\b", "buy"), _rule(r"\bbuy\b", "purchase"), _rule(r"\blarge\b", "big"),
    _rule(r"\bhelps\b", "assists"), _rule(r"\bcheck\b", "inspect"),
    _rule(r"\bdamaged\b", "broken"), _rule(r"\bremove\b", "take out"),
    _rule(r"\bcosts\b", "is priced at"), _rule(r"\bshows\b", "displays"),
    _rule(r"\bpress\b", "push"), _rule(r"\benough\b", "sufficient"),
    _rule(r"\bevery\b", "each"), _rule(r"\breceive\b", "get"), _rule(r"\bneeds\b", "requires"),
    _rule(r"\bquickly\b", "fast"), _rule(r"\bbegins\b", "starts"),
    _rule(r"\bUSD (\d)", r"$\1", 0),
    *[_rule(rf"\b{d} (hours|minutes|seconds|days|years|months|weeks|times|phones|LEDs)\b",
            rf"{w} \1", 0) for d, w in _NUMBER_WORDS.items()],
    _rule(r"^(If|When|Before|After) ([^,]{3,60}), (.+?)([.!]?)$",
          lambda m: f"{m[3]} {m[1].lower()} {m[2]}{m[4]}", 0),
    _rule(r"^To ([^,]{3,60}), (.+?)([.!]?)$", lambda m: f"{m[2]} to {m[1]}{m[3]}", 0),
    _rule(r"^(The|A|An|It|This|Each|Every|You|Your|All|Most) ",
          lambda m: f"According to the guide, {m[1].lower()} ", 0),
]

# A quantity as a support text writes it: a number and, usually, its unit.
QUANTITY = re.compile(
    r"(?<![\w.,-])(?P<value>\d+(?:,\d{3})*(?:\.\d+)?)(?![.,]?\d)(?P<gap>\s?)"
    r"(?P<unit>°C|%|(?:Wh|km/h|mm|cm|km|kg|Ah|V|A|W|h|hours?|min(?:utes?)?|s|sec(?:onds?)?"
    r"|days?|weeks?|months?|years?|lumens?|L|m|psi|bar)(?![\w/]))?")

UNIT_SWAPS = {"hours": "minutes", "hour": "minutes", "h": "min", "minutes": "hours",
              "minute": "hours", "min": "h", "seconds": "minutes", "s": "min", "kg": "g",
              "cm": "mm", "mm": "cm", "km": "m", "days": "weeks", "weeks": "days",
              "months": "years", "years": "months"}
