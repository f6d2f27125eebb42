"""Extraction on the bundled manual, checked against hand-written ground truth (sample_doc_facts.py)."""

from __future__ import annotations

import pytest

from orgtune.data.extract import default_statements, definition_of, extract_facts
from orgtune.ingest.read import read_document
from tests.conftest import SAMPLES
from tests.data.sample_doc_facts import DEFAULTS, PROCEDURES, SPEC_VALUES

DOCS = SAMPLES / "docs"


@pytest.fixture(scope="module")
def extracted():
    out = {}
    for path in sorted(DOCS.iterdir()):
        if path.suffix in (".md", ".html", ".docx", ".pdf", ".txt"):
            doc = read_document(path)
            out[path.name] = (doc, extract_facts(doc))
    return out


def _norm(s: str) -> str:
    return " ".join(s.split()).lower()


@pytest.mark.parametrize("name", sorted(SPEC_VALUES))
def test_every_spec_value_is_a_fact(extracted, name):
    doc, facts = extracted[name]
    stated = [_norm(f.value) for f in facts] + [_norm(s) for f in facts for s in (f.steps or [])]
    for value in SPEC_VALUES[name]:
        assert any(_norm(value) in s for s in stated), f"{name}: {value!r} is in no fact"


@pytest.mark.parametrize("name", sorted(PROCEDURES))
def test_every_procedure_is_a_fact_with_steps_in_order(extracted, name):
    doc, facts = extracted[name]
    procedures = [[_norm(s) for s in f.steps] for f in facts if f.kind == "procedure"]
    for steps in PROCEDURES[name]:
        assert [_norm(s) for s in steps] in procedures, f"{name}: procedure starting {steps[0]!r} missing"


def test_every_default_has_the_right_subject(extracted):
    for name, subject, value in DEFAULTS:
        doc, facts = extracted[name]
        hits = [f for f in facts if f.kind == "default" and _norm(value) == _norm(f.value)]
        assert any(_norm(subject) in _norm(f.subject) for f in hits), (
            name,
            subject,
            value,
            [(f.subject, f.value) for f in hits],
        )


def test_spans_slice_the_stated_value(extracted):
    for name, (doc, facts) in extracted.items():
        for f in facts:
            source = _norm(doc.text[f.span[0] : f.span[1]])
            if f.kind == "procedure":
                assert all(_norm(s) in source for s in f.steps)
            elif f.kind not in ("summary",):
                assert _norm(f.value) in source or _norm(f.value.split(",")[0]) in source, (name, f)


@pytest.mark.parametrize(
    "sentence,subject,value",
    [
        ("The default brew temperature is 93 C.", "brew temperature", "93 C"),
        ("Auto-standby defaults to 25 minutes.", "Auto-standby", "25 minutes"),
        ("The grind setting is set to 12 at the factory.", "grind setting", "12"),
        ("By default, the cup warmer is off.", "cup warmer", "off"),
        ("The steam wand is closed by default.", "steam wand", "closed"),
        ("The default for max_connections is 100 connections.", "max_connections", "100 connections"),
        ("The default is 128 megabytes (128MB).", None, "128 megabytes"),
        ("This parameter defaults to on.", None, "on"),
        ("Valid arguments are any (the default), inet or inet6.", None, "any"),
        ("Sets the default time zone for displaying times.", None, None),
        # conditionals state no default unless they mark one
        ("If ClientAliveInterval is set to 15, clients are dropped after 45 seconds.", None, None),
        ("If the default is overridden, every method must complete.", None, None),
        ("When forwarding is enabled, the proxy is configured to listen on the wildcard address.", None, None),
        ("If this option is set to no (the default) then only addresses may be used.", None, "no"),
        # a list follows the colon: no value in this sentence
        ("The default is:", None, None),
        # 'no X is Y' means X is none; a value word standing where the subject would be is the value
        ("By default, no banner is displayed.", "banner", "none"),
        ("The default none is to never expire connections.", None, "none"),
        # '… is X by default' where X is a clause of its own is not a default value
        ("This option is intended for debugging and no overrides are enabled by default.", None, None),
        # an infinitive value keeps its prepositions
        ("The default is to listen on all local addresses.", None, "to listen on all local addresses"),
    ],
)
def test_default_patterns(sentence, subject, value):
    got = default_statements(sentence)
    if value is None:
        assert got is None
    else:
        assert got == (subject, value)


def test_context_subject_comes_from_the_documented_term(tmp_path):
    page = tmp_path / "ref.html"
    page.write_text(
        "<html><body><h1>Server settings</h1><dl>"
        "<dt><code>work_mem</code> (integer)</dt><dd><p>Sets the base amount of memory to be used by a "
        "query operation before writing to temporary disk files. The default is four megabytes.</p></dd>"
        "<dt>listen_port</dt><dd><p>The TCP port the server listens on when started without a "
        "configuration file. Defaults to 8080.</p></dd></dl></body></html>"
    )
    facts = extract_facts(read_document(page))
    defaults = {(f.subject, f.value) for f in facts if f.kind == "default"}
    assert ("work_mem", "four megabytes") in defaults and ("listen_port", "8080") in defaults


def test_man_page_style_text(tmp_path):
    page = tmp_path / "tool.txt"
    page.write_text(
        "DESCRIPTION\n     Options:\n\n     MaxSessions\n             Specifies the maximum number of "
        "open sessions.  The default is 10.\n\n     UseDNS\n             Specifies whether to look up "
        "the remote host name.  Valid values are yes or no (the default).\n"
    )
    defaults = {(f.subject, f.value) for f in extract_facts(read_document(page)) if f.kind == "default"}
    assert ("MaxSessions", "10") in defaults and ("UseDNS", "no") in defaults


def test_definitions():
    assert definition_of("Pre-infusion is a low-pressure soak of the puck.") == (
        "Pre-infusion",
        "a low-pressure soak of the puck",
    )
    assert definition_of("It is a machine that makes coffee.") is None


MAN_PAGE = """\
FROBD_CONFIG(5)                  File Formats Manual                  FROBD_CONFIG(5)

NAME
     frobd_config — Frob daemon configuration file

DESCRIPTION
     frobd(8) reads its configuration from /etc/frobd.conf.

     ChannelIdle
             Specifies how quickly idle channels are closed.  The available channel types include:

             agent-connection
                     Open connections to the agent.

             x11-connection
                     Open X11 forwarding sessions.

             The default is not to close idle channels.

     Port    Specifies the port number that frobd(8) listens on.  The default is 4040.

     PermitListen
             Specifies the addresses on which remote forwarding may listen.  By default all port forwarding listen
             requests are permitted.

     Ciphers
             Specifies the ciphers allowed.  The default is:

                   chacha20-poly1305,aes128-ctr

     PidFile
             Specifies the file that contains the process ID.  The default is /run/frobd.pid.

BSD                                 January 18, 2023                                 BSD
"""


def test_manual_page_layout(tmp_path):
    """A rendered manual page: title from NAME, header/footer dropped, same-line terms, nested terms
    that leave the text after them under the outer term, and defaults filed under the right option."""
    page = tmp_path / "frobd_config.txt"
    page.write_text(MAN_PAGE, encoding="utf-8")
    doc = read_document(page)
    assert doc.title == "frobd_config"
    assert "FROBD_CONFIG(5)" not in doc.text and "January 18, 2023" not in doc.text
    headings = [doc.span_text((b.start, b.end)) for b in doc.blocks if b.kind == "heading"]
    assert headings == ["NAME", "DESCRIPTION", "ChannelIdle", "Port", "PermitListen", "Ciphers", "PidFile"]
    nested = [b for b in doc.blocks if b.kind == "list"]
    assert [b.heading_path[-1] for b in nested] == ["ChannelIdle", "ChannelIdle"]
    assert doc.span_text((nested[0].start, nested[0].end)).endswith("agent-connection: Open connections to the agent.")
    defaults = {(f.subject, f.value) for f in extract_facts(doc) if f.kind == "default"}
    assert defaults == {
        ("ChannelIdle", "not to close idle channels"),
        ("Port", "4040"),
        ("PidFile", "/run/frobd.pid"),
        ("PermitListen", "All port forwarding listen requests are permitted"),
    }
