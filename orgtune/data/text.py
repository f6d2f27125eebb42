"""Small text tools shared by extraction, synthesis and scoring: sentences, quantities, names.

sentences("It brews at 8.5 bar. Heat-up takes 38 s.")  -> [(0, 20), (21, 39)]  (spans)
quantities("Set 93 C or 1.7 liters")                     -> [Quantity('93', 'C', ...), ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Span = tuple[int, int]

# Abbreviations that never end a sentence, and ones that end it unless a digit or lower-case word follows.
_ABBREV = {
    "e.g",
    "i.e",
    "approx",
    "vs",
    "fig",
    "mr",
    "mrs",
    "dr",
    "st",
    "ca",
    "cf",
    "incl",
    "excl",
    "resp",
    "ref",
    "vol",
    "p",
    "pp",
    "ext",
    "tel",
    "ph",
    "dept",
    "art",
    "sect",
}
_ABBREV_BEFORE_NUMBER = {"no", "nr", "min", "max", "sec", "etc", "approx"}
_END = re.compile(r"[.!?](?=[\"')\]]?\s+[\"'(\[]?[A-Z0-9])|[.!?]$")


def sentences(text: str, offset: int = 0) -> list[Span]:
    """Sentence spans in `text` (shifted by `offset`); decimals and common abbreviations do not end one."""
    spans, start = [], 0
    for m in _END.finditer(text):
        end = m.end()
        word = re.search(r"(\w+(?:\.\w)?)\.$", text[start:end])
        if word and end < len(text):
            w, nxt = word.group(1).lower(), text[end:].lstrip()[:1]
            if w in _ABBREV or (w in _ABBREV_BEFORE_NUMBER and (nxt.isdigit() or nxt.islower())):
                continue
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        if piece.strip():
            spans.append((offset + start + lead, offset + end))
        start = end
    tail = text[start:]
    if tail.strip():
        lead = len(tail) - len(tail.lstrip())
        spans.append((offset + start + lead, offset + len(text.rstrip())))
    return spans


# A number (1, 1.7, 1,350, 2-3, 88-96, 1/2) followed by an optional unit word or symbol.
_NUM = r"[-+]?\d+(?:[.,]\d+)*(?:\s?(?:-|–|to)\s?\d+(?:[.,]\d+)*)?"
_UNIT = r"(?:°\s?[CF]|%|[A-Za-zµΩ°]+(?:[·/][A-Za-zµΩ]+)*(?:²|³|\^?[23])?)"
_QTY = re.compile(rf"(?<![\w.])(?P<num>{_NUM})(?:\s?(?P<unit>{_UNIT}))?(?![\w])")

# Unit words recognised after a number (lower-cased); short capitalised tokens (MB, PSI, kVA) also count.
UNITS = set(
    """
s sec secs second seconds ms millisecond milliseconds us µs min mins minute minutes h hr hrs hour hours day days
week weeks month months year years mm cm m km in inch inches ft foot feet yd mi g kg mg lb lbs oz t ton tons ml l
liter liters litre litres gal gallon gallons cup cups bar bars psi kpa pa mpa atm mbar v mv kv a ma w kw mw kwh wh
hz khz mhz ghz ohm ohms kohm c f k b kb mb gb tb kib mib gib tib bit bits byte bytes kbps mbps gbps rpm db dba lux lm
n nm n·m kn % percent shot shots cycle cycles page pages connection connections row rows character characters char
chars token tokens item items file files request requests retry retries attempt attempts thread threads worker
workers degree degrees deg people persons users user mah ah kcal cal j kj l/min m/s km/h mph
kilobyte kilobytes megabyte megabytes gigabyte gigabytes terabyte terabytes milliliter milliliters millilitre
millilitres millimeter millimeters millimetre millimetres centimeter centimeters meter meters metre metres
kilometer kilometers gram grams kilogram kilograms watt watts kilowatt kilowatts volt volts amp amps ampere
amperes hertz celsius fahrenheit euro euros dollar dollars eur usd gbp milliseconds millisecond
""".split()
)


def is_unit(word: str) -> bool:
    w = word.replace("°", "").strip()
    if w.lower() in UNITS or word.startswith("°") or word == "%":
        return True
    return 1 < len(w) <= 4 and w.isalpha() and any(ch.isupper() for ch in w) and not w.istitle()


@dataclass
class Quantity:
    number: str
    unit: str | None
    start: int
    end: int
    text: str  # exactly as written in the source


def quantities(text: str) -> list[Quantity]:
    out = []
    for m in _QTY.finditer(text):
        unit = m.group("unit")
        end = m.end()
        if unit and not is_unit(unit):
            unit, end = None, m.end("num")
        out.append(Quantity(m.group("num"), unit, m.start(), end, text[m.start() : end]))
    return out


def unit_of(value: str) -> str | None:
    """The unit of a value like '35 psi' or '110 N·m' (None when the value is not a quantity)."""
    qs = quantities(value)
    return qs[0].unit if qs and qs[0].start <= 2 else None


_GENERIC_DOC_WORDS = re.compile(
    r"\b(service|user'?s?|owner'?s?|operating|operation|installation|quick[- ]start|reference|technical|"
    r"maintenance|troubleshooting|warranty|policy|manual|guide|handbook|documentation|docs?|card|sheet|"
    r"instructions?|overview|cleaning|and)\b|\s[-–—:&]\s|:\s*$",
    re.I,
)


def main_subject(title: str) -> str:
    """'Velbrook Halvo Service Manual' -> 'Velbrook Halvo' (document-type words removed)."""
    cut = _GENERIC_DOC_WORDS.sub(" ", title)
    cut = re.sub(r"\s+", " ", cut).strip(" -–—:,")
    return cut or title.strip()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*", text.lower())
