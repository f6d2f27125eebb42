"""Wrong answers made from right ones: a grounded answer with another number, the opposite yes/no word,
another unit, two steps swapped, or a neighbouring fact's value (`corrupt`); and which trained facts' values
the model borrowed for a question it could not know (`borrowed`).

    corrupt(brew_pressure_9_bar, "The brew pressure of the Halvo is 9 bar.", neighbours, rng)
        -> ("The brew pressure of the Halvo is 18 bar.", "number")   # (or 10, 90, 8 or 4.5 bar)
"""

from __future__ import annotations

import random
import re

from orgtune.data.extract import Fact

_BOOL = {
    "yes": "no",
    "no": "yes",
    "on": "off",
    "off": "on",
    "true": "false",
    "false": "true",
    "enabled": "disabled",
    "disabled": "enabled",
    "open": "closed",
    "closed": "open",
    "none": "all",
}
_UNIT_SWAP = {
    "bar": "psi",
    "psi": "bar",
    "°c": "°F",
    "°f": "°C",
    "c": "F",
    "f": "C",
    "seconds": "minutes",
    "second": "minute",
    "minutes": "seconds",
    "minute": "second",
    "s": "min",
    "min": "s",
    "ml": "l",
    "l": "ml",
    "mm": "cm",
    "cm": "mm",
    "kg": "g",
    "g": "kg",
    "v": "A",
    "a": "V",
    "w": "kW",
    "kw": "W",
    "hours": "minutes",
    "hour": "minute",
    "days": "hours",
    "bits": "bytes",
    "bytes": "bits",
    "mb": "GB",
    "gb": "MB",
    "megabytes": "gigabytes",
    "gigabytes": "megabytes",
}
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")


def _with_value(answer: str, value: str, new: str) -> str | None:
    """`answer` with its statement of `value` replaced by `new` (None when the answer does not state it)."""
    i = answer.lower().rfind(value.lower())
    if i < 0 or not value.strip():
        return None
    return answer[:i] + new + answer[i + len(value) :]


def corrupt(f: Fact, answer: str, neighbours: list[Fact], rng: random.Random) -> tuple[str, str] | None:
    """A wrong copy of a grounded answer, and how it was made: boolean, number, unit, order or neighbour."""
    value = f.value.strip()
    if f.kind == "procedure" and f.steps and len(f.steps) >= 2:
        i = rng.randrange(len(f.steps) - 1)
        swapped = list(f.steps)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        body = "\n".join(f"{n}. {s}" for n, s in enumerate(swapped, 1))
        head = answer.split("\n", 1)[0] if "\n" in answer else ""
        return (f"{head}\n{body}" if head else body), "order"
    if value.lower() in _BOOL:
        new = _with_value(answer, value, _BOOL[value.lower()])
        if new:
            return new, "boolean"
    numbers = list(_NUMBER.finditer(value))
    if numbers:
        m = numbers[0]
        n = float(m.group())
        choices = [n * 2, n + 1, n * 10] + ([n - 1] if n > 1 else []) + ([n / 2] if n >= 2 else [])
        new_n = rng.choice(choices)
        text = f"{new_n:g}" if "." in m.group() or new_n != int(new_n) else str(int(new_n))
        new = _with_value(answer, value, value[: m.start()] + text + value[m.end() :])
        if new:
            return new, "number"
    if f.unit and f.unit.lower() in _UNIT_SWAP:
        unit_at = value.lower().rfind(f.unit.lower())
        new = _with_value(answer, value, value[:unit_at] + _UNIT_SWAP[f.unit.lower()] + value[unit_at + len(f.unit) :])
        if new:
            return new, "unit"
    others = [g for g in neighbours if g.fact_id != f.fact_id and g.value.strip().lower() != value.lower()]
    same = [g for g in others if g.attribute.lower() == f.attribute.lower()]  # a value of the same column first
    others = same or others
    if others:
        g = rng.choice(others)
        if f.kind in ("summary", "definition") and answer.strip() == value:
            return g.value, "neighbour"
        new = _with_value(answer, value, g.value.strip())
        if new:
            return new, "neighbour"
    return None


def borrowed(answers: list[tuple[str, str]], facts: list[Fact]) -> list[str]:
    """Ids of the facts whose value appears, as a whole word or figure, in a (question, answer) pair's
    answer but not in its question (a value the question itself names, such as a model number, is not
    borrowed), in `facts` order.

        borrowed([("Heat-up time of the Halvo?", "It is 20 seconds.")], [steam_ready_20_seconds]) -> [its id]
    """
    out = []
    for f in facts:
        value = (f.value or "").strip().lower()
        if f.kind == "procedure" or len(value) < 3:
            continue
        pattern = re.compile(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)")
        if any(pattern.search(a.lower()) and not pattern.search(q.lower()) for q, a in answers):
            out.append(f.fact_id)
    return out
