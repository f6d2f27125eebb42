"""Zip-based documents (.docx) are refused from their headers when they would inflate past the caps,
before any part is decompressed, and the build goes on with the other files."""

from __future__ import annotations

import zipfile

import pytest

from orgtune.ingest import read
from orgtune.ingest.read import IngestError, ingest, read_document
from tests.ingest.test_ingest_docx import write_manual


def _with_extra(path, src, parts: dict[str, bytes]):
    with zipfile.ZipFile(src) as z_in, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in z_in.infolist():
            z.writestr(info, z_in.read(info))
        for name, data in parts.items():
            z.writestr(name, data)
    return path


@pytest.fixture
def manual(tmp_path):
    path = tmp_path / "manual.docx"
    write_manual(path)
    return path


def test_a_docx_that_inflates_to_100_mib_is_refused_by_its_headers(tmp_path, manual):
    bomb = _with_extra(tmp_path / "bomb.docx", manual, {"word/media/pad.xml": b"a" * (100 * 2**20)})
    assert bomb.stat().st_size < 300 * 2**10  # a small file on disk
    with pytest.raises(IngestError, match=r"inflate to 10\d\.\d MB \(at most 64 MB\): a zip bomb"):
        read_document(bomb)


def test_caps_on_total_size_and_entries(tmp_path, manual, monkeypatch):
    many = _with_extra(tmp_path / "many.docx", manual, {f"customXml/pad{i}.xml": b"<x/>" for i in range(5001)})
    with pytest.raises(IngestError, match="5\\d{3} parts"):
        read_document(many)
    dense = _with_extra(tmp_path / "dense.docx", manual, {"word/media/zeros.bin": bytes(10 * 2**20)})
    with pytest.raises(IngestError, match=r"part word/media/zeros.bin inflates \d+×"):
        read_document(dense)  # 10 MB in all, under the cap, but one part is a bomb by its ratio
    monkeypatch.setattr(read, "MAX_UNZIPPED", 2**20)  # 1 MiB of honest, incompressible-enough parts
    big = _with_extra(tmp_path / "big.docx", manual, {"word/media/img.bin": bytes(range(256)) * 5000})
    with pytest.raises(IngestError, match="inflate to"):
        read_document(big)


def test_the_build_skips_the_bomb_and_reads_the_rest(tmp_path, manual):
    _with_extra(tmp_path / "bomb.docx", manual, {"word/pad.xml": b"\0" * (80 * 2**20)})
    docs, skipped = ingest([manual, tmp_path / "bomb.docx"])
    assert [d.path for d in docs] == [str(manual)] and len(skipped) == 1 and "zip bomb" in skipped[0].reason
