import hashlib

import pytest
from fpdf import FPDF

from orgtune.ingest.read import IngestError, read_document


class Manual(FPDF):
    """Running header and page-number footer on every page: both must be dropped."""

    def header(self):
        self.set_font("Helvetica", size=8)
        self.cell(0, 5, "ACME Espresso - User Manual", align="C", new_x="LMARGIN", new_y="NEXT")
        self.ln(6)

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.cell(0, 5, f"Page {self.page_no()}", align="C")


def heading(pdf: FPDF, text: str, size: int) -> None:
    pdf.set_font("Helvetica", "B", size)
    pdf.cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.ln(2)


def lines(pdf: FPDF, *texts: str) -> None:
    for t in texts:
        pdf.cell(0, 6, t, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)


def write_manual(path) -> None:
    pdf = Manual()
    pdf.add_page()
    heading(pdf, "Espresso Machine", 20)
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(
        60, 6, "This manual covers the daily use of the machine and its care.", new_x="LMARGIN", new_y="NEXT"
    )  # wraps over several lines: still one paragraph
    pdf.ln(5)
    heading(pdf, "Specifications", 15)
    lines(pdf, "Brew pressure: 8.5 bar")
    with pdf.table(width=100, col_widths=(60, 40)) as table:
        for row in [["Setting", "Default"], ["Temperature", "93 C"], ["Dose", "18 g"]]:
            cells = table.row()
            for text in row:
                cells.cell(text)
    pdf.add_page()
    heading(pdf, "Descaling", 15)
    lines(pdf, "1. Fill the tank with descaler.", "2. Press Start.", "3. Rinse twice.")
    lines(pdf, "- Use fresh water", "- Empty the drip tray")
    pdf.output(str(path))


def test_manual(tmp_path, summary, manual):
    path = tmp_path / "manual.pdf"
    write_manual(path)
    doc = read_document(path)
    assert summary(doc) == manual
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 2, 2]
    assert "ACME" not in doc.text and "Page" not in doc.text
    assert doc.format == "pdf" and doc.title == "Espresso Machine"
    assert doc.doc_id == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bold_headings_and_paragraph_across_pages(tmp_path, summary):
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    heading(pdf, "Storage", 11)  # bold at body size
    pdf.set_y(270)
    pdf.cell(0, 6, "Keep the machine in a dry place and", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.cell(0, 6, "away from frost.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)
    lines(pdf, "Temperature: 5-30 C", "Humidity: below 80 %")
    pdf.output(str(tmp_path / "s.pdf"))
    assert summary(read_document(tmp_path / "s.pdf")) == [
        ("heading", [], "Storage"),
        ("paragraph", ["Storage"], "Keep the machine in a dry place and away from frost."),
        ("kv", ["Storage"], ("Temperature", "5-30 C")),
        ("kv", ["Storage"], ("Humidity", "below 80 %")),
    ]


def test_encrypted_and_textless(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.cell(0, 6, "Secret")
    pdf.set_encryption(owner_password="owner", user_password="user")
    pdf.output(str(tmp_path / "locked.pdf"))
    with pytest.raises(IngestError, match="encrypted PDF"):
        read_document(tmp_path / "locked.pdf")

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 100, style="F")  # a "scan": no text layer
    pdf.output(str(tmp_path / "scan.pdf"))
    with pytest.raises(IngestError, match=r"no text found \(scanned PDF\? OCR is not supported\)"):
        read_document(tmp_path / "scan.pdf")
