"""Score closed-book answers against a probe's expected value, strictly.

    score_value("35 psi", "The tire pressure is 35 PSI.")          -> Score(correct=True, …)
    score_value("1 min", "Wait one minute.")                        -> correct
    score_value("8.5 bar", "It brews at 8.5 or 9 bar.")             -> wrong (a hedge lists several values)
    score_value("off", "The cup warmer is on by default.")          -> wrong (opposite boolean)
    score_steps(["Fill the tank.", "Press Start."], answer)         -> recall and order of the steps
    score_text(expected, answer)                                    -> token F1 and ROUGE-L

Rules (documented in the README):
- quantities: numbers are normalised ("one" = 1, "1,350" = 1350) and units canonical ("PSI" = "psi",
  "minute" = "min", "liters" = "l", "°C" = "c"); every expected quantity must appear; any other number
  with the same unit that the expected value does not contain makes the answer wrong (hedging).
- on/off-style words: the expected word must appear and its opposite must not.
- names, codes and short phrases: the whole phrase must appear (case- and spacing-insensitive).
- longer text: token F1 >= 0.5, or token recall >= 0.7 in an answer at most 3x the text's length + 40
  tokens (an answer that adds the rest of a table row is fine; one that dumps a page is not).
- abstentions ("I don't know", "not specified") are never correct and never "confidently wrong".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from orgtune.data.text import quantities

F1_CORRECT = 0.5
RECALL_CORRECT = 0.7
STEP_MATCH = 0.5

_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "half": 0.5,
    "a dozen": 12,
    "a single": 1,
}
_UNITS = {
    "s": "s sec secs second seconds",
    "min": "min mins minute minutes",
    "h": "h hr hrs hour hours",
    "d": "d day days",
    "wk": "wk week weeks",
    "mo": "mo month months",
    "yr": "y yr yrs year years",
    "ms": "ms millisecond milliseconds",
    "l": "l liter liters litre litres",
    "ml": "ml milliliter milliliters",
    "c": "c °c degc celsius",
    "f": "f °f degf fahrenheit",
    "mm": "mm millimeter millimeters millimetre millimetres",
    "cm": "cm centimeter centimeters",
    "m": "m meter meters metre metres",
    "km": "km kilometer kilometers",
    "g": "g gram grams",
    "kg": "kg kilogram kilograms",
    "w": "w watt watts",
    "kw": "kw kilowatt kilowatts",
    "v": "v volt volts",
    "a": "a amp amps ampere amperes",
    "hz": "hz hertz",
    "b": "b byte bytes",
    "kb": "kb kilobyte kilobytes kib",
    "mb": "mb megabyte megabytes mib",
    "gb": "gb gigabyte gigabytes gib",
    "%": "% percent",
    "eur": "eur euro euros €",
    "usd": "usd $ dollar dollars",
    "gbp": "gbp £ pound pounds",
    "tb": "tb terabyte terabytes tib",
}
_CANON = {w: k for k, ws in _UNITS.items() for w in ws.split()}
_OPPOSITES = [
    ("on", "off"),
    ("yes", "no"),
    ("enabled", "disabled"),
    ("true", "false"),
    ("open", "closed"),
    ("allowed", "denied"),
    ("required", "optional"),
    ("active", "inactive"),
    ("always", "never"),
]
_OPPOSITE = {a: b for a, b in _OPPOSITES} | {b: a for a, b in _OPPOSITES}
_ABSTAIN = re.compile(
    r"\b(i (?:do not|don't|cannot|can't) (?:know|say|find)|not (?:sure|specified|mentioned|stated|"
    r"available|documented|provided)|no information|unknown|i am not aware|i'm not aware|"
    r"cannot (?:be )?determine)\b",
    re.I,
)


@dataclass
class Score:
    correct: bool
    score: float  # 1/0 for values; F1 or step score for text and procedures
    abstained: bool = False
    reason: str = ""


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("°", " °").replace("‑", "-").replace("–", "-")
    for phrase, n in sorted(_NUMBER_WORDS.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(rf"\b{phrase}\b", str(n), text)
    return re.sub(r"\s+", " ", text)


def _number(s: str) -> float | None:
    s = s.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", s) else s.replace(",", ".")
    try:
        return float(s)
    except ValueError:
        return None


_CURRENCY_FIRST = re.compile(r"(?P<cur>eur|usd|gbp|€|\$|£)\s?(?P<num>\d+(?:[.,]\d+)*)")


def _quantities(text: str) -> list[tuple[float, str | None]]:
    out = []
    norm = _norm(text)
    for m in _CURRENCY_FIRST.finditer(norm):  # 'EUR 25', '$30'
        n = _number(m.group("num"))
        if n is not None:
            out.append((n, _CANON.get(m.group("cur"), m.group("cur"))))
    norm = _CURRENCY_FIRST.sub(" ", norm)
    for q in quantities(norm):
        parts = re.split(r"\s?(?:-|to)\s?", q.number)
        unit = _CANON.get((q.unit or "").lower().replace("° ", "°").strip(), (q.unit or "").lower() or None)
        for p in parts:
            n = _number(p)
            if n is not None:
                out.append((n, unit))
    return out


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", _norm(text))


def token_f1(expected: str, answer: str) -> float:
    e, a = tokens(expected), tokens(answer)
    if not e or not a:
        return 0.0
    common = sum(min(e.count(t), a.count(t)) for t in set(e))
    if common == 0:
        return 0.0
    p, r = common / len(a), common / len(e)
    return 2 * p * r / (p + r)


def rouge_l(expected: str, answer: str) -> float:
    e, a = tokens(expected), tokens(answer)
    if not e or not a:
        return 0.0
    prev = [0] * (len(a) + 1)
    for x in e:
        cur = [0]
        for j, y in enumerate(a, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(e)
    return 2 * p * r / (p + r)


def abstains(answer: str) -> bool:
    return not answer.strip() or bool(_ABSTAIN.search(answer))


def _phrase_in(phrase: str, text: str) -> bool:
    p = " ".join(tokens(phrase))
    return bool(p) and re.search(rf"(?<![a-z0-9]){re.escape(p)}(?![a-z0-9])", " ".join(tokens(text))) is not None


def score_value(expected: str, answer: str, question: str = "") -> Score:
    """Strict match of a short expected value (quantity, on/off word, code or name) in an answer.

    Numbers the question itself contains (a model number, the other value of a cloze sentence) are
    not counted as hedges when the answer repeats them."""
    if abstains(answer):
        return Score(False, 0.0, abstained=True, reason="abstained")
    given = _quantities(question)
    want = _quantities(expected)
    if want and any(u for _, u in want):
        got = [(m, v) for m, v in _quantities(answer) if any(abs(m - n) < 1e-9 for n, _ in want) or (m, v) not in given]
        for n, u in want:
            if not any(abs(n - m) < 1e-9 and (u is None or v is None or u == v) for m, v in got):
                return Score(False, 0.0, reason=f"missing {n:g} {u or ''}".strip())
        units = {u for _, u in want if u}
        allowed = {n for n, _ in want}
        extra = [m for m, v in got if v in units and all(abs(m - n) > 1e-9 for n in allowed)]
        if extra:
            return Score(False, 0.0, reason=f"also states {extra[0]:g} (hedge or wrong value)")
        return Score(True, 1.0)
    words = tokens(expected)
    if len(words) == 1 and words[0] in _OPPOSITE:
        ans = set(tokens(answer))
        if _OPPOSITE[words[0]] in ans:
            return Score(False, 0.0, reason=f"states the opposite ({_OPPOSITE[words[0]]})")
        return Score(words[0] in ans, float(words[0] in ans), reason="" if words[0] in ans else "missing")
    if len(words) <= 4:
        ok = _phrase_in(expected, answer)
        if ok and want:  # a bare number: no other bare number (beyond the question's) may be offered
            extra = [
                m
                for m, v in _quantities(answer)
                if v is None and all(abs(m - n) > 1e-9 for n, _ in want) and (m, v) not in given
            ]
            ok = ok and not (extra and len(want) == 1 and not re.search(r"[a-z]", expected.lower()))
        return Score(ok, float(ok), reason="" if ok else "missing")
    return score_text(expected, answer)


def token_recall(expected: str, answer: str) -> float:
    e, a = tokens(expected), tokens(answer)
    if not e:
        return 0.0
    return sum(min(e.count(t), a.count(t)) for t in set(e)) / len(e)


def score_text(expected: str, answer: str) -> Score:
    """Explanatory text: right when the answer covers the documented text (token recall >= 0.7) without
    burying it (at most 3x its length + 40 tokens), or matches it closely (token F1 >= 0.5)."""
    if abstains(answer):
        return Score(False, 0.0, abstained=True, reason="abstained")
    f1, rec = token_f1(expected, answer), token_recall(expected, answer)
    short_enough = len(tokens(answer)) <= 3 * len(tokens(expected)) + 40
    ok = f1 >= F1_CORRECT or (rec >= RECALL_CORRECT and short_enough)
    return Score(ok, f1, reason=f"token F1 {f1:.2f}, recall {rec:.2f}")


def score_steps(expected_steps: list[str], answer: str) -> Score:
    """Step recall (each expected step matched by a line/sentence of the answer with F1 >= 0.5) times the
    share of matched steps that appear in the right order; correct when recall >= 0.8 and order is kept."""
    if abstains(answer):
        return Score(False, 0.0, abstained=True, reason="abstained")
    pieces = [p for p in re.split(r"\n+|(?<=[.!?])\s+(?=\d+[.)]\s)|(?<=[.!?])\s+", answer) if p.strip()]
    positions = []
    for step in expected_steps:
        best = max(
            ((token_f1(step, re.sub(r"^\s*\d+[.)]\s*", "", p)), i) for i, p in enumerate(pieces)), default=(0.0, -1)
        )
        positions.append(best[1] if best[0] >= STEP_MATCH else None)
    matched = [p for p in positions if p is not None]
    recall = len(matched) / len(expected_steps) if expected_steps else 0.0
    in_order = _longest_increasing(matched) / len(matched) if matched else 0.0
    score = recall * in_order
    return Score(recall >= 0.8 and in_order == 1.0, score, reason=f"step recall {recall:.2f}, order {in_order:.2f}")


def _longest_increasing(xs: list[int]) -> int:
    import bisect

    tails: list[int] = []
    for x in xs:
        i = bisect.bisect_left(tails, x)
        tails[i : i + 1] = [x]
    return len(tails)


def score_probe(probe: dict, answer: str) -> Score:
    """Pick the rule by what the probe expects: ordered steps, a short value, or explanatory text."""
    if probe.get("expected_steps"):
        return score_steps(probe["expected_steps"], answer)
    if probe.get("kind") in ("definition", "summary") or probe.get("task") in ("EXPLAIN", "RECALL"):
        return score_text(probe["expected"], answer)
    return score_value(probe["expected"], answer, probe.get("plain_question") or probe.get("question") or "")
