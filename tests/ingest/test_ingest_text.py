import hashlib

from orgtune.ingest.blocks import DocBuilder
from orgtune.ingest.read import read_document
from orgtune.ingest.text import read_text

MANUAL_TXT = """\
Espresso Machine
================

This manual covers the daily use of the
machine and its care.

Specifications
--------------

Brew pressure: 8.5 bar

Descaling
---------

1. Fill the tank with descaler.
2. Press Start.
3. Rinse twice.

- Use fresh water
* Empty the drip tray
"""


def test_manual(tmp_path, summary, manual):
    path = tmp_path / "manual.txt"
    path.write_bytes(b"\xef\xbb\xbf" + MANUAL_TXT.replace("\n", "\r\n").encode())  # BOM and CRLF are fine
    doc = read_document(path)
    assert summary(doc) == [m for m in manual if m[0] != "table"]  # plain text has no tables
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 2, 2]
    assert doc.title == "Espresso Machine" and doc.format == "txt"
    assert doc.doc_id == hashlib.sha256(path.read_bytes()).hexdigest()


def read(text: str):
    b = DocBuilder()
    read_text(text, b)
    return b.build(path="x.txt", raw=text.encode(), fmt="txt")


def test_numbered_and_caps_headings_vs_steps(summary):
    doc = read(
        "SAFETY NOTES\nKeep the machine dry.\n\n2. Maintenance\n\nClean it weekly.\n\n2.1 Descaling\n\n"
        "1. Empty the tank\n\n2. Add descaler\n\nStep 3: Press Start\n\n2.2 Storage\n\n"
        "Temperature: 5-30 C\nHumidity = below 80 %\n\nUSE ONLY GENUINE PARTS.\n"
    )
    assert summary(doc) == [
        ("heading", [], "SAFETY NOTES"),
        ("paragraph", ["SAFETY NOTES"], "Keep the machine dry."),
        ("heading", [], "2. Maintenance"),
        ("paragraph", ["2. Maintenance"], "Clean it weekly."),
        ("heading", ["2. Maintenance"], "2.1 Descaling"),
        ("steps", ["2. Maintenance", "2.1 Descaling"], ["Empty the tank", "Add descaler", "Press Start"]),
        ("heading", ["2. Maintenance"], "2.2 Storage"),
        ("kv", ["2. Maintenance", "2.2 Storage"], ("Temperature", "5-30 C")),
        ("kv", ["2. Maintenance", "2.2 Storage"], ("Humidity", "below 80 %")),
        ("paragraph", ["2. Maintenance", "2.2 Storage"], "USE ONLY GENUINE PARTS."),  # final period: not a heading
    ]
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 1, 2, 2]


def test_wrapped_items_and_mixed_block(summary):
    doc = read(
        "To descale:\n1) Fill the tank\n   with descaler.\n2) Press Start.\n  - wait for the beep\n"
        "Then rinse.\n\n\u2022 fresh water\n\u2022 a clean\ncloth\n\n---\n\nKey: value\nnot a pair\n"
    )
    assert summary(doc) == [
        ("paragraph", [], "To descale:"),
        ("steps", [], ["Fill the tank with descaler.", "Press Start.", "wait for the beep"]),
        ("paragraph", [], "Then rinse."),
        ("list", [], ["fresh water", "a clean cloth"]),
        ("paragraph", [], "Key: value not a pair"),
    ]


def test_caps_and_numbered_headings_sit_under_a_title(summary):
    doc = read("Halvo Quick Start\n=================\n\nIN THE BOX\n\n- Tamper\n\n1. Setup\n\nPlug it in.\n")
    assert summary(doc) == [
        ("heading", [], "Halvo Quick Start"),
        ("heading", ["Halvo Quick Start"], "IN THE BOX"),
        ("list", ["Halvo Quick Start", "IN THE BOX"], ["Tamper"]),
        ("heading", ["Halvo Quick Start"], "1. Setup"),
        ("paragraph", ["Halvo Quick Start", "1. Setup"], "Plug it in."),
    ]


def test_key_value_lines_need_a_separator_not_a_host_port():
    from orgtune.ingest.blocks import split_kv

    assert split_kv("Tire pressure: 35 psi") == ("Tire pressure", "35 psi")
    assert split_kv("Torque — 110 N·m") == ("Torque", "110 N·m")
    assert split_kv("PermitListen host:port") is None  # syntax, not 'PermitListen host' = 'port'
