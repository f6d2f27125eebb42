"""Facts from documents: deterministic, domain-independent extractors, each fact traced to its span.

    facts = extract_facts(doc)          # doc: orgtune.ingest.blocks.Document
    doc.text[f.span[0]:f.span[1]]       # the source text that states f.value

Kinds: `spec` (key/value lines, two-column spec tables), `table_cell` (row, column, value),
`default` ("the default is …", "defaults to …", "is set to …", "by default …"), `procedure`
(numbered steps, in order), `definition` ("X is a …", "X means …"), `sentence` (a sentence stating a
measured quantity), `summary` (a section's opening sentences). Nothing here knows any product: the
subject of a statement comes from the statement itself, or from the nearest named thing around it
(the term a paragraph documents, the key of its line, the row of its cell, the document's title).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

from orgtune.data.text import main_subject, quantities, sentences, unit_of
from orgtune.ingest.blocks import Block, Document

Span = tuple[int, int]


@dataclass
class Fact:
    fact_id: str
    doc_id: str
    kind: str
    subject: str
    attribute: str
    value: str
    unit: str | None
    span: Span
    section_path: list[str]
    steps: list[str] | None = None
    context: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["span"] = list(self.span)
        return {k: v for k, v in d.items() if v not in (None, {}, [])} | {"section_path": self.section_path}

    @staticmethod
    def from_dict(d: dict) -> Fact:
        d = {"steps": None, "context": {}, "unit": None, **d}
        d["span"] = tuple(d["span"])
        return Fact(**d)


def _fact(
    doc: Document, kind: str, subject: str, attribute: str, value: str, span: Span, block: Block, **extra
) -> Fact:
    key = f"{doc.doc_id}:{kind}:{span[0]}:{span[1]}:{attribute}:{value}"
    return Fact(
        fact_id=hashlib.sha1(key.encode()).hexdigest()[:12],
        doc_id=doc.doc_id,
        kind=kind,
        subject=subject.strip(),
        attribute=attribute.strip(),
        value=value.strip(),
        unit=unit_of(value),
        span=span,
        section_path=list(block.heading_path),
        **extra,
    )


# --- names ---------------------------------------------------------------------------------------

_GENERIC_SUBJECTS = {
    "it",
    "this",
    "that",
    "they",
    "these",
    "those",
    "value",
    "the value",
    "this value",
    "setting",
    "the setting",
    "this setting",
    "option",
    "the option",
    "this option",
    "parameter",
    "the parameter",
    "this parameter",
    "default",
    "the default",
    "its value",
    "its default",
}
_TYPE_SUFFIX = re.compile(r"\s*[\(\[][^)\]]{1,40}[\)\]]\s*$")
_LEAD_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)


def clean_name(name: str) -> str:
    name = _TYPE_SUFFIX.sub("", name.strip().strip("`'\"*:,;.").strip())
    name = _LEAD_ARTICLE.sub("", name).strip()
    if name.isupper() and len(name) > 5 and " " in name:  # 'FIRST USE' -> 'First use'
        name = name.capitalize()
    return name


def is_generic(name: str) -> bool:
    n = name.lower().strip()
    return not n or n in _GENERIC_SUBJECTS or _LEAD_ARTICLE.sub("", n) in _GENERIC_SUBJECTS


def context_name(doc: Document, block: Block, offset: int | None = None) -> str:
    """The named thing a statement inside `block` is about when it does not name it itself."""
    if block.kind == "kv" and block.key:
        return clean_name(doc.span_text(block.key))
    if block.kind == "table" and block.rows and offset is not None:
        for row in block.rows:
            if row and row[0][0] <= offset <= row[-1][1]:
                return clean_name(doc.span_text(row[0]))
    if block.kind in ("list", "steps") and block.items and offset is not None:
        for a, b in block.items:
            if a <= offset <= b:
                lead = re.match(r"^\s*([^:—–]{1,60}?)\s*(?::|\s[—–-]\s)", doc.text[a:b])
                if lead:
                    return clean_name(lead.group(1))
    if block.heading_path:
        return clean_name(block.heading_path[-1])
    return main_subject(doc.title)


# --- default statements --------------------------------------------------------------------------

_DEFAULT_PATTERNS = [
    re.compile(r"\bthe default (?:value |setting )?(?:of|for) (?P<subj>.+?) (?:is|are|will be) (?P<val>.+)", re.I),
    re.compile(r"\bthe default (?P<subj>[\w\s\-/]{1,60}?) (?:is|are|will be) (?P<val>.+)", re.I),
    re.compile(r"(?:^|(?P<subj>.+?)\s)defaults? to (?P<val>.+)", re.I),
    re.compile(r"\bby default,? (?P<subj>.+?) (?:is|are|will be|stays|remains|uses|use) (?P<val>.+)", re.I),
    re.compile(r"^(?P<subj>.+?) (?:is|are) (?P<val>[^,;]+?),? by default\b", re.I),
    re.compile(
        r"^(?P<subj>.+?) (?:is|are) (?:set|preset|configured|initially set) to (?P<val>.+?)"
        r"(?: at the factory| by default| out of the box| from the factory| on delivery)?\s*[.]?$",
        re.I,
    ),
    re.compile(r"(?:^|\s)(?P<val>[\w./:+-]+|\"[^\"]+\"|“[^”]+”)\s+\((?:the |by )?default\)", re.I),
    re.compile(r"\bdefault(?: value| setting)?\s*(?:is|:|=)\s*(?P<val>.+)", re.I),
    re.compile(r"\bthe default is (?P<val>.+)", re.I),
]
_VALUE_STOP = re.compile(
    r"(?:[;]|\s\(|,\s(?:but|which|unless|and|so|meaning|i\.e\.|e\.g\.|except)\b|"
    r"\s(?:unless|if|when|except|but|which means|so that|because|for all|on all)\s)",
    re.I,
)
# An infinitive value ('to listen on all local addresses') keeps its prepositions.
_CLAUSE_STOP = re.compile(r"(?:[;]|\s\(|,\s|\s(?:unless|if|when|except|but|which means|so that|because)\s)", re.I)
_CONDITIONAL = re.compile(r"^\W*(?:if|when|whenever|unless|once|while|where)\b", re.I)
_DEFAULT_MARK = 6  # index of the '(the default)' pattern: the only one a conditional sentence may use
_SUFFIX_BY_DEFAULT = 4  # '… is X by default': X must not be a clause of its own
_VALUE_WORDS = {"none", "yes", "no", "on", "off", "true", "false", "enabled", "disabled", "empty", "unset"}


def clean_value(val: str) -> str:
    stop = _CLAUSE_STOP if re.match(r"(?:not )?to \w", val.strip(), re.I) else _VALUE_STOP
    val = stop.split(val, maxsplit=1)[0]
    val = val.strip().rstrip(".").strip().strip("`'\"“”‘’*").strip()
    if len(val) > 60 and "," in val:
        val = val.split(",", 1)[0]
    return val.strip()


def default_statements(sentence: str) -> tuple[str | None, str] | None:
    """(subject or None, value) of a default statement, or None when the sentence states no default.

    A conditional ('If X is set to 15, …', 'If the default is overridden, …') states no default unless
    it marks one ('If this option is set to no (the default) …'); 'By default, no X is run' is X = none;
    a value with no letter or digit ('The default is:' before a list) is not taken."""
    if not re.search(r"\bdefault|\bset to\b|\bpreset to\b|\bconfigured to\b", sentence, re.I):
        return None
    conditional = bool(_CONDITIONAL.match(sentence))
    for k, pat in enumerate(_DEFAULT_PATTERNS):
        if conditional and k != _DEFAULT_MARK:
            continue
        m = pat.search(sentence)
        if not m:
            continue
        val = clean_value(m.group("val"))
        if not val or len(val) > 80 or not re.search(r"\w", val):
            continue
        if k == _SUFFIX_BY_DEFAULT and re.search(r"\b(?:is|are|was|were|will)\b", val, re.I):
            continue
        subj = m.groupdict().get("subj")
        subj = clean_name(subj) if subj else None
        if subj and subj.lower() in _VALUE_WORDS:  # 'The default none is to never expire …'
            subj, val = None, subj
        elif subj and re.match(r"^no\s+\S", subj, re.I):  # 'By default, no banner is displayed'
            subj, val = clean_name(subj[3:]), "none"
        if subj and (is_generic(subj) or len(subj.split()) > 8):
            subj = None
        return subj, val
    return None


_IDENTIFIER = re.compile(
    r"^[A-Za-z][A-Za-z0-9_.-]*(?:[a-z0-9][A-Z]|_)[A-Za-z0-9_.-]*$"
)  # 'PermitListen', 'max_wal_size'


def default_subject(subj: str | None, val: str, sentence: str, context: str) -> tuple[str, str, bool]:
    """Who a default statement is about: its own subject, or the entry it sits under. Under an
    identifier-named entry ('PermitListen') a plain-words subject ('By default all port forwarding
    listen requests are permitted') makes the whole clause the value. Returns (subject, value, clause)."""
    if not subj:
        return context, val, False
    if subj.lower() == context.lower():
        return context, val, False
    if _IDENTIFIER.match(context) and re.fullmatch(r"[a-z][a-z\s-]*", subj) and len(val.split()) <= 4:
        clause = re.sub(r"^\W*by default,?\s*", "", sentence.strip(), flags=re.I).rstrip(".")
        if clause and len(clause) <= 100:
            return context, clause[:1].upper() + clause[1:], True
    return subj, val, False


# --- definitions ---------------------------------------------------------------------------------

_DEFINITION = re.compile(
    r"^(?:an?\s+|the\s+)?(?P<term>[A-Za-z][\w\-/ ]{1,40}?)\s+(?:is|are|means|refers to|is defined as|is short for)\s+"
    r"(?P<def>(?:an?|the|any|one|when|how|where)\b.{6,})$",
    re.I,
)
_NOT_TERMS = re.compile(
    r"^(it|this|that|there|these|those|they|he|she|we|you|i|here|what|which|who|each|every)\b", re.I
)


def definition_of(sentence: str) -> tuple[str, str] | None:
    m = _DEFINITION.match(sentence.strip())
    if not m:
        return None
    term = clean_name(m.group("term"))
    if _NOT_TERMS.match(term) or len(term.split()) > 5 or re.search(r"\bdefault\b", sentence, re.I):
        return None
    return term, m.group("def").strip().rstrip(".")


# --- the extractors ------------------------------------------------------------------------------

_SPEC_HEADERS = re.compile(
    r"value|spec|specification|rating|setting|amount|size|capacity|default|limit|range|"
    r"figure|data|detail",
    re.I,
)


def _table_facts(doc: Document, block: Block, subject: str) -> list[Fact]:
    rows = block.rows or []
    if len(rows) < 2 or not block.header:
        return []
    header = [clean_name(doc.span_text(c)) or f"column {i + 1}" for i, c in enumerate(rows[0])]
    out = []
    two_col_spec = len(header) == 2 and bool(_SPEC_HEADERS.search(header[1]))
    for row in rows[1:]:
        if len(row) < 2:
            continue
        key = clean_name(doc.span_text(row[0]))
        if not key:
            continue
        span = (row[0][0], row[-1][1])
        for c, cell in enumerate(row[1:], 1):
            value = doc.span_text(cell).strip()
            if not value or value in ("-", "—", "–", "n/a", "N/A") or c >= len(header):
                continue
            ctx = {"row": key, "column": header[c], "row_header": header[0], "cell": list(cell)}
            if two_col_spec:
                out.append(_fact(doc, "spec", subject, key, value, span, block, context=ctx))
            else:
                out.append(_fact(doc, "table_cell", key, header[c], value, span, block, context=ctx))
            if "default" in header[c].lower():
                out.append(_fact(doc, "default", key, "default", value, span, block, context=ctx))
    return out


def _procedure(doc: Document, block: Block, previous: Block | None) -> Fact:
    name = None
    if previous is not None and previous.kind == "paragraph":
        lead = doc.span_text((previous.start, previous.end)).strip()
        if lead.endswith(":") and len(lead) < 120:
            name = re.sub(r"^(?:to|how to)\s+", "", lead.rstrip(":"), flags=re.I)
    if not name:
        name = clean_name(block.heading_path[-1]) if block.heading_path else "procedure"
    steps = [doc.text[a:b] for a, b in block.items or []]
    value = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    return _fact(doc, "procedure", name, "steps", value, (block.start, block.end), block, steps=steps)


def _statements(doc: Document, block: Block) -> list[tuple[Span, str]]:
    """Sentence spans of a block's prose (paragraph sentences, list items, kv values, table cells)."""
    if block.kind == "paragraph":
        return [((a, b), doc.text[a:b]) for a, b in sentences(doc.text[block.start : block.end], block.start)]
    if block.kind in ("list", "steps"):
        return [((a, b), doc.text[a:b]) for a, b in block.items or []]
    if block.kind == "kv" and block.value:
        return [((block.start, block.end), doc.span_text(block.value))]
    if block.kind == "table" and block.rows:
        return [(tuple(c), doc.span_text(c)) for row in block.rows[1:] for c in row[1:]]
    return []


def extract_facts(doc: Document) -> list[Fact]:
    """Every fact the extractors find in `doc`, in document order, without duplicates."""
    subject = main_subject(doc.title)
    facts: list[Fact] = []
    previous: Block | None = None
    for i, block in enumerate(doc.blocks):
        if block.kind == "kv" and block.key and block.value:
            key, value = clean_name(doc.span_text(block.key)), doc.span_text(block.value).strip()
            own = definition_of(value)
            if own and own[0].lower() == key.lower():  # 'Pre-infusion: Pre-infusion is a …'
                facts.append(_fact(doc, "definition", key, "definition", own[1], (block.start, block.end), block))
            elif len(value.split()) >= 8 and not quantities(value):
                facts.append(
                    _fact(doc, "definition", key, "definition", value.rstrip("."), (block.start, block.end), block)
                )
            else:
                facts.append(_fact(doc, "spec", subject, key, value, (block.start, block.end), block))
        elif block.kind == "table":
            facts.extend(_table_facts(doc, block, subject))
        elif block.kind == "steps" and block.items and len(block.items) >= 2:
            facts.append(_procedure(doc, block, previous))
        elif block.kind == "heading":
            summary = _summary(doc, i)
            if summary:
                facts.append(summary)
        for span, text in _statements(doc, block):
            d = default_statements(text)
            if d:
                subj, val, clause = default_subject(*d, text, context_name(doc, block, span[0]))
                facts.append(
                    _fact(
                        doc,
                        "default",
                        subj,
                        "default",
                        val,
                        span,
                        block,
                        context={"sentence": text, **({"clause": True} if clause else {})},
                    )
                )
                continue
            if block.kind == "paragraph":
                definition = definition_of(text)
                if definition:
                    facts.append(_fact(doc, "definition", definition[0], "definition", definition[1], span, block))
                    continue
            if block.kind in ("paragraph", "list"):
                for q in quantities(text):
                    if q.unit:
                        cloze = text[: q.start] + "___" + text[q.end :]
                        facts.append(
                            _fact(doc, "sentence", subject, cloze, q.text, span, block, context={"sentence": text})
                        )
        previous = block
    return _dedup(facts)


def _summary(doc: Document, heading_index: int) -> Fact | None:
    heading = doc.blocks[heading_index]
    for block in doc.blocks[heading_index + 1 :]:
        if block.kind == "heading":
            return None
        if block.kind == "paragraph":
            spans = sentences(doc.text[block.start : block.end], block.start)[:2]
            if not spans:
                return None
            span = (spans[0][0], spans[-1][1])
            if span[1] - span[0] > 400:
                span = spans[0]
            name = doc.span_text((heading.start, heading.end))
            return _fact(doc, "summary", clean_name(name), "summary", doc.span_text(span), span, block)
    return None


def _dedup(facts: list[Fact]) -> list[Fact]:
    seen, out = set(), []
    for f in facts:
        key = (f.kind, f.subject.lower(), f.attribute.lower(), f.value.lower())
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
