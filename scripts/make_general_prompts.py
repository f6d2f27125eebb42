"""Regenerates the templated part of orgtune/train/general_prompts.jsonl (ids t…): short general prompts
built from word lists, beside the hand-written ones (ids r…). None is a question of the general check
(orgtune/evaluate/general.jsonl); the script fails if one is.

    .venv/bin/python scripts/make_general_prompts.py
    .venv/bin/python scripts/make_general_prompts.py --bundle    # then ship the embedded model's answers

`--bundle` writes orgtune/train/general_answers/smollm2-135m.json: the embedded model's answers to the
prompts (generated, or taken from ORGTUNE_HOME's cache), so that a new machine need not generate them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "orgtune" / "train" / "general_prompts.jsonl"
CHECK = ROOT / "orgtune" / "evaluate" / "general.jsonl"

COUNTRIES = [
    "Ireland",
    "Poland",
    "Austria",
    "Finland",
    "Denmark",
    "Belgium",
    "Netherlands",
    "Switzerland",
    "Hungary",
    "Czechia",
    "Romania",
    "Turkey",
    "Iran",
    "Iraq",
    "Pakistan",
    "Thailand",
    "Vietnam",
    "Indonesia",
    "Philippines",
    "Malaysia",
    "Nigeria",
    "Ghana",
    "Morocco",
    "Ethiopia",
    "Peru",
    "Chile",
    "Colombia",
    "Venezuela",
    "Cuba",
    "New Zealand",
]
WORDS_OPPOSITE = [
    "big",
    "fast",
    "light",
    "open",
    "full",
    "young",
    "rich",
    "strong",
    "soft",
    "wet",
    "loud",
    "new",
    "long",
    "high",
    "clean",
    "easy",
    "first",
    "inside",
    "win",
    "push",
    "buy",
    "true",
    "day",
    "left",
]
WORDS_SYNONYM = [
    "small",
    "quick",
    "smart",
    "angry",
    "begin",
    "end",
    "large",
    "beautiful",
    "scared",
    "tired",
    "funny",
    "easy",
    "hard",
    "cold",
    "rich",
    "help",
]
PLURALS = [
    "mouse",
    "foot",
    "tooth",
    "woman",
    "box",
    "city",
    "leaf",
    "knife",
    "person",
    "goose",
    "baby",
    "bus",
    "fish",
    "sheep",
    "cactus",
    "wolf",
]
PAST = [
    "eat",
    "run",
    "see",
    "write",
    "swim",
    "buy",
    "think",
    "bring",
    "sing",
    "drink",
    "take",
    "make",
    "come",
    "fly",
    "teach",
    "sleep",
]
TRANSLATE = [
    ("water", "French"),
    ("cat", "French"),
    ("house", "French"),
    ("book", "Spanish"),
    ("dog", "Spanish"),
    ("friend", "Spanish"),
    ("bread", "German"),
    ("apple", "German"),
    ("please", "French"),
    ("good morning", "Spanish"),
    ("yes", "German"),
    ("no", "French"),
    ("red", "Spanish"),
    ("sun", "Italian"),
    ("one", "Italian"),
    ("love", "Italian"),
]
ANIMAL_LEGS = ["dog", "bird", "ant", "horse", "cow", "duck", "beetle", "octopus", "crab", "snake", "frog", "chicken"]
ELEMENTS = [
    "silver",
    "oxygen",
    "carbon",
    "hydrogen",
    "helium",
    "potassium",
    "calcium",
    "copper",
    "lead",
    "nitrogen",
    "zinc",
    "tin",
]
CATEGORIES = [
    "vegetable",
    "bird",
    "musical instrument",
    "sport",
    "flower",
    "tree",
    "planet",
    "metal",
    "color",
    "country in Europe",
    "mammal that lives in the sea",
    "kitchen tool",
    "type of weather",
    "board game",
    "breakfast food",
    "programming language",
]
TOPICS = [
    "the ocean",
    "a rainy day",
    "coffee",
    "the moon",
    "a library",
    "autumn",
    "a bicycle",
    "friendship",
    "mountains",
    "a city at night",
    "trains",
    "gardening",
    "the desert",
    "snow",
    "music",
    "a market",
]
RHYMES = ["dog", "tree", "cake", "light", "rain", "ball", "sun", "star", "boat", "king", "bed", "hat"]
BOOKS = [
    ("Hamlet", "play"),
    ("1984", "novel"),
    ("Don Quixote", "novel"),
    ("The Odyssey", "poem"),
    ("War and Peace", "novel"),
    ("Moby-Dick", "novel"),
    ("Macbeth", "play"),
    ("Oliver Twist", "novel"),
]
CURRENCIES = [
    "the United States",
    "India",
    "China",
    "Switzerland",
    "Mexico",
    "Brazil",
    "Russia",
    "South Africa",
    "Canada",
    "Australia",
    "Sweden",
    "Turkey",
]
REVERSE = ["dog", "sun", "book", "tree", "star", "moon", "lamp", "fish"]
FRUIT_COLOR = ["lemon", "strawberry", "lime", "blueberry", "orange", "cherry", "grape", "kiwi fruit"]


def templated(rng: random.Random) -> list[str]:
    out = [f"What is the capital of {c}?" for c in COUNTRIES]
    for _ in range(24):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        out.append(
            rng.choice(
                [f"What is {a} plus {b}?", f"What is {a + b} minus {b}?", f"What is {a % 13 + 2} times {b % 11 + 2}?"]
            )
        )
    out += [f"What is the opposite of '{w}'?" for w in WORDS_OPPOSITE]
    out += [f"Give a synonym for '{w}'." for w in WORDS_SYNONYM]
    out += [f"What is the plural of '{w}'?" for w in PLURALS]
    out += [f"What is the past tense of '{w}'?" for w in PAST]
    out += [f"How do you say '{w}' in {lang}?" for w, lang in TRANSLATE]
    out += [f"How many legs does a {a} have?" for a in ANIMAL_LEGS]
    out += [f"What is the chemical symbol for {e}?" for e in ELEMENTS]
    out += [f"Name a {c}." for c in CATEGORIES]
    out += [f"Write one sentence about {t}." for t in TOPICS]
    out += [f"Give me a word that rhymes with '{w}'." for w in RHYMES]
    out += [f"Who wrote the {kind} {title}?" for title, kind in BOOKS]
    out += [f"What is the currency of {c}?" for c in CURRENCIES]
    out += [f"Spell the word '{w}' backwards." for w in REVERSE]
    out += [f"What color is a ripe {f}?" for f in FRUIT_COLOR]
    return out


def main() -> None:
    import sys

    if "--bundle" in sys.argv[1:]:
        from orgtune.train.general import bundle

        out = ROOT / "orgtune" / "train" / "general_answers" / "smollm2-135m.json"
        out.parent.mkdir(exist_ok=True)
        print(bundle("smollm2-135m", out))
        return
    check = {json.loads(x)["question"].lower() for x in CHECK.read_text().splitlines() if x.strip()}
    kept = [
        json.loads(x) for x in OUT.read_text().splitlines() if x.strip() and not json.loads(x)["id"].startswith("t")
    ]
    seen = {r["prompt"].lower() for r in kept}
    rows = []
    for p in templated(random.Random(7)):
        if p.lower() in check:
            raise SystemExit(f"{p!r} is a question of the general check: change the lists")
        if p.lower() not in seen:
            seen.add(p.lower())
            rows.append({"id": f"t{len(rows) + 1:03d}", "prompt": p})
    OUT.write_text("".join(json.dumps(r) + "\n" for r in kept + rows))
    print(f"{OUT}: {len(kept)} hand-written + {len(rows)} templated prompts")


if __name__ == "__main__":
    main()
