"""Questions the documents do not answer, and answers that abstain.

Unstated questions ask, in training's own phrasings, for things no document states: a common attribute
such as weight that no document gives anything, the default of a documented option that states none, a
table code past the last one listed. Their chosen answer is "… is not stated in the …" (`not_stated`);
nothing any fact states, held-out facts included, is asked this way. For facts that `data build
--abstain-holdout` kept out of training, the answer to prefer is not knowing (`dont_know`): the grounded
answer's own words up to the value, then "unknown to me" ("The rating for fuse F2 is unknown to me; please
check <document>."), so that a pair differs exactly where the model recalls the value.

    unstated_asks(docs, facts, 12, rng, "[{TASK}] {instruction}") -> [(doc_id, question, answer, what), ...]
"""

from __future__ import annotations

import random
import re

from orgtune.data.extract import Fact
from orgtune.data.synth import BUILDERS, lower_noun, the

# Attributes a reader may ask about any product or entry; asked only where no fact names them.
_COMMON_ATTRIBUTES = (
    "weight",
    "width",
    "height",
    "depth",
    "noise level",
    "release year",
    "country of manufacture",
    "battery capacity",
    "screen size",
    "list price",
)
_CODE = re.compile(r"^(?P<prefix>[A-Za-z]{1,3}[-\s]?)(?P<n>\d{1,3})$")


def _mentions(attribute: str, stated: set[str]) -> bool:
    words = {w for w in re.findall(r"[a-z]+", attribute.lower()) if len(w) > 2}
    return any(words & {w for w in re.findall(r"[a-z]+", s) if len(w) > 2} for s in stated)


def unstated_asks(
    docs: dict, facts: list[Fact], n: int, rng: random.Random, prefix_format: str
) -> list[tuple[str, str, str, str]]:
    """(doc id, question, abstaining answer, what was asked): about `n` unstated questions, shared out over
    the documents by their number of facts; never about a held-out or any other stated fact."""
    unstated: list[tuple[str, str, str, str]] = []
    by_doc: dict[str, list[Fact]] = {}
    for f in facts:
        by_doc.setdefault(f.doc_id, []).append(f)
    for doc_id, doc_facts in by_doc.items():
        share = max(1, round(n * len(doc_facts) / max(1, len(facts))))
        for q, a, what in unstated_questions(docs[doc_id], doc_facts, facts, rng, share, prefix_format):
            unstated.append((doc_id, q, a, what))
    return unstated


def unstated_questions(
    doc, facts: list[Fact], all_facts: list[Fact], rng: random.Random, limit: int, prefix_format: str
) -> list[tuple[str, str, str]]:
    """(question, abstaining answer, what was asked) about things the documents never state, asked in
    the phrasings training uses: attributes of a subject that no fact gives it, the default of a
    documented option that states none, and table codes past the last one listed. Held-out facts count
    as stated: nothing any document states is asked this way."""
    by_subject: dict[str, set[str]] = {}
    for f in all_facts:
        by_subject.setdefault(f.subject.lower(), set()).add(f.attribute.lower())
    candidates: list[Fact] = []
    specs = [f for f in facts if f.kind == "spec"]
    stated_anywhere = {f.attribute.lower() for f in all_facts} | {f.subject.lower() for f in all_facts}
    if any("dimension" in a or "size" in a for a in stated_anywhere):
        stated_anywhere |= {"width", "height", "depth"}  # stated as one "dimensions" value
    for subject in sorted({f.subject for f in specs}):
        for a in _COMMON_ATTRIBUTES:  # only attributes no document states for anything
            if not _mentions(a, stated_anywhere):
                candidates.append(Fact("", doc.doc_id, "spec", subject, a, "", None, (0, 0), []))
    options = {
        f.subject for f in facts if f.kind == "summary" and re.match(r"^[A-Za-z][\w.-]*(?:[a-z0-9][A-Z]|_)", f.subject)
    }
    for subject in sorted(options):
        if "default" not in by_subject.get(subject.lower(), set()):
            candidates.append(Fact("", doc.doc_id, "default", subject, "default", "", None, (0, 0), []))
    cells = [f for f in facts if f.kind == "table_cell" and _CODE.match(f.subject)]
    for (prefix, column), group in _group_cells(cells).items():
        top = max(int(_CODE.match(f.subject).group("n")) for f in group)
        for k in (top + 2, top + 5):
            fake = Fact(
                "",
                doc.doc_id,
                "table_cell",
                f"{prefix}{k}",
                column,
                "",
                None,
                (0, 0),
                [],
                context={"row_header": group[0].context.get("row_header", "item")},
            )
            candidates.append(fake)
    rng.shuffle(candidates)
    out = []
    for fake in candidates[:limit]:
        # phrasings that quote the value ('Which code has the fix "…"?') have nothing to quote here
        _name, task, q, _a = rng.choice([t for t in BUILDERS[fake.kind](fake, doc) if not t[0].endswith("reverse")])
        what = f"{fake.subject} / {fake.attribute}"
        out.append((prefix_format.format(TASK=task, instruction=q), not_stated(fake, doc), what))
    return out


def _group_cells(cells: list[Fact]) -> dict[tuple[str, str], list[Fact]]:
    groups: dict[tuple[str, str], list[Fact]] = {}
    for f in cells:
        groups.setdefault((_CODE.match(f.subject).group("prefix"), f.attribute), []).append(f)
    return groups


def not_stated(f: Fact, doc) -> str:
    """The answer to a question the documents do not answer."""
    where = f"the {doc.title}" if f.kind != "spec" else "the documentation"
    if f.kind == "procedure":
        return f'The "{f.subject}" instructions are not stated in {where}.'
    if f.kind == "sentence":
        return f"That figure is not stated in {where}."
    if f.kind in ("definition", "summary"):
        return f"{f.subject} is not mentioned in {where}."
    return f"The {lower_noun(f.attribute)} of {the(f.subject)} is not stated in {where}."


def dont_know(f: Fact, doc, grounded: str | None = None) -> str:
    """The honest answer to a question about a fact training never showed: not knowing, and where to look
    (and, as a refusal pair's rejected answer, what the model must not say about a fact it was trained on).

    Given the grounded answer, the abstention takes its place at the value: "The rating of fuse F2 is
    unknown to me; please check …" shares every token before the value with "The rating of fuse F2 is
    10 A.", so the pair differs exactly where the model recalls the value (or fails to)."""
    product = the(doc.title)
    if grounded:
        value = f.steps[0] if f.kind == "procedure" and f.steps else f.value.strip()
        i = grounded.lower().rfind(value.lower()[:60]) if value else -1
        if f.kind == "procedure" and i > 0:
            i = grounded.rfind("\n", 0, i) + 1  # the whole numbered list goes
        if i > 0:
            head = grounded[:i]
            if f.kind == "procedure":
                return f"{head}They are unknown to me; please check {product}."
            glue = "" if re.search(r"\b(is|are|says|was)\s$", head) else "— "
            what = "a figure " if f.kind == "sentence" and not re.search(r"\b(a|an)\s$", head) else ""
            return f"{head}{glue}{what}unknown to me; please check {product}."
    if f.kind == "procedure":
        what = f'the steps of "{f.subject}"'
    elif f.kind == "table_cell":
        what = f"the {lower_noun(f.attribute)} for {lower_noun(f.context.get('row_header', 'item'))} {f.subject}"
    elif f.kind == "sentence":
        what = "that figure"
    elif f.kind in ("definition", "summary"):
        about = "" if f.subject.lower() in doc.title.lower() else f' about "{f.subject}"'
        what = f"what {product} says{about}" if f.kind == "summary" else f"how {f.subject} is defined"
    else:
        what = f"the {lower_noun(f.attribute)} of {the(f.subject)}"
    return f"I don't know {what}; please check {product}."
