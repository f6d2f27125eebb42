import hashlib

import docx

from orgtune.ingest.read import read_document


def write_manual(path) -> None:
    d = docx.Document()
    d.add_heading("Espresso Machine", 1)
    p = d.add_paragraph("This manual covers the ")
    p.add_run("daily use").bold = True
    p.add_run(" of the machine and its care.")
    d.add_heading("Specifications", 2)
    d.add_paragraph("Brew pressure: 8.5 bar")
    table = d.add_table(rows=3, cols=2)
    for r, row in enumerate([["Setting", "Default"], ["Temperature", "93 C"], ["Dose", "18 g"]]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    d.add_heading("Descaling", 2)
    for step in ["Fill the tank with descaler.", "Press Start.", "Rinse twice."]:
        d.add_paragraph(step, style="List Number")
    d.add_paragraph("")  # empty paragraphs are skipped and do not split a list
    for item in ["Use fresh water", "Empty the drip tray"]:
        d.add_paragraph(item, style="List Bullet")
    d.save(path)


def test_manual(tmp_path, summary, manual):
    path = tmp_path / "manual.docx"
    write_manual(path)
    doc = read_document(path)
    assert summary(doc) == manual
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 2, 2]
    assert doc.format == "docx" and doc.title == "Espresso Machine"
    assert doc.doc_id == hashlib.sha256(path.read_bytes()).hexdigest()


def test_title_style_merged_cells_and_line_breaks(tmp_path, summary):
    d = docx.Document()
    d.add_heading("Grinder Guide", 0)  # the "Title" style
    d.add_heading("Settings", 1)
    p = d.add_paragraph("Voltage: 230 V")
    p.add_run().add_break()
    p.add_run("Power: 150 W")
    table = d.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Burr sizes"
    for c, text in enumerate(["fine", "medium", "coarse"]):
        table.cell(1, c).text = text
    d.add_paragraph("Step two", style="List Number 2")
    d.add_paragraph("A bullet", style="List Paragraph")
    d.save(tmp_path / "g.docx")
    doc = read_document(tmp_path / "g.docx")
    path = ["Grinder Guide", "Settings"]
    assert summary(doc) == [
        ("heading", [], "Grinder Guide"),
        ("heading", ["Grinder Guide"], "Settings"),
        ("kv", path, ("Voltage", "230 V")),
        ("kv", path, ("Power", "150 W")),
        ("table", path, [["Burr sizes"], ["fine", "medium", "coarse"]]),
        ("steps", path, ["Step two"]),
        ("list", path, ["A bullet"]),
    ]
    assert doc.title == "Grinder Guide"
