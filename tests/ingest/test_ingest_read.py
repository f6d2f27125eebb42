import time

import pytest

from orgtune.errors import OrgtuneError
from orgtune.ingest.read import IngestError, Skipped, find_files, ingest, read_document

GOOD_MD = "# Grinder\n\nVoltage: 230 V\n"


def reason(path, **kw) -> str:
    with pytest.raises(IngestError) as err:
        read_document(path, **kw)
    return str(err.value)


def test_bad_files_have_clear_reasons(tmp_path):
    (tmp_path / "junk.pdf").write_bytes(bytes(range(256)) * 4)
    assert reason(tmp_path / "junk.pdf") == "not a PDF (no %PDF header)"
    (tmp_path / "junk.docx").write_bytes(b"PK\x03\x04 not really a zip")
    assert reason(tmp_path / "junk.docx") == "not a .docx (not a zip archive)"
    (tmp_path / "empty.md").write_text("  \n\n\t\n")
    assert reason(tmp_path / "empty.md") == "empty file"
    (tmp_path / "latin1.txt").write_bytes("line one\nline two\ncaf\u00e9 cr\u00e8me\n".encode("cp1252"))
    assert reason(tmp_path / "latin1.txt") == (
        "not UTF-8 (first bad byte 0xe9 on line 3); convert it with iconv -f cp1252 -t utf-8"
    )
    (tmp_path / "notes.xyz").write_text("hello")
    assert reason(tmp_path / "notes.xyz") == "unsupported type .xyz"
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7\n garbage that is no pdf at all\n")
    assert reason(tmp_path / "bad.pdf").startswith("unreadable PDF (")
    (tmp_path / "comment.html").write_text("<html><!-- nothing --><script>x()</script></html>")
    assert reason(tmp_path / "comment.html") == "no text found"
    assert isinstance(IngestError("x"), OrgtuneError)  # the CLI prints it without a traceback


def test_size_is_checked_before_reading(tmp_path):
    small = tmp_path / "small.md"
    small.write_text("# T\n\n" + "word " * 400)
    assert reason(small, max_bytes=1000) == "2.0 KB is over the 1000 bytes limit (raise --max-file-mb)"
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:  # sparse: 8 GiB that would take seconds and gigabytes to read
        f.truncate(8 * 2**30)
    start = time.perf_counter()
    assert reason(huge) == "8192.0 MB is over the 20 MB limit (raise --max-file-mb)"
    assert time.perf_counter() - start < 0.5


def test_find_files_sorted_hidden_skipped(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ["b/z.md", "a.TXT", ".hidden.md", ".git/x.md", "b/y.htm", "c.docx", "d.csv", "README"]:
        (tmp_path / name).write_text("x")
    files, skipped = find_files([tmp_path, tmp_path / "a.TXT", tmp_path / "missing.md"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.TXT", "b/y.htm", "b/z.md", "c.docx"]
    assert sorted((s.path.replace(str(tmp_path), ""), s.reason) for s in skipped) == [
        ("/README", "unsupported type (no suffix)"),
        ("/d.csv", "unsupported type .csv"),
        ("/missing.md", "not found"),
    ]


def test_ingest_keeps_going(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "good.md").write_text(GOOD_MD)
    (tmp_path / "docs" / "sub" / "copy.md").write_text(GOOD_MD)
    (tmp_path / "docs" / "notes.txt").write_text("NOTES\nDescale monthly.\n")
    (tmp_path / "docs" / "page.html").write_text("<h1>FAQ</h1><p>Yes.</p>")
    (tmp_path / "docs" / "scan.pdf").write_bytes(b"\x00\x01 junk")
    (tmp_path / "docs" / "empty.md").write_text("")
    (tmp_path / "docs" / "old.txt").write_bytes(b"ok\n\xff\xfeno")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")
    docs, skipped = ingest([tmp_path / "docs"], max_bytes=10_000)
    assert [d.path for d in docs] == [str(tmp_path / "docs" / n) for n in ("good.md", "notes.txt", "page.html")]
    assert [d.title for d in docs] == ["Grinder", "NOTES", "FAQ"]
    root = str(tmp_path / "docs") + "/"
    assert sorted((s.path.replace(root, ""), s.reason) for s in skipped) == [
        ("empty.md", "empty file"),
        ("image.png", "unsupported type .png"),
        ("old.txt", "not UTF-8 (first bad byte 0xff on line 2); convert it with iconv -f cp1252 -t utf-8"),
        ("scan.pdf", "not a PDF (no %PDF header)"),
        ("sub/copy.md", f"duplicate of {root}good.md"),
    ]
    assert all(isinstance(s, Skipped) for s in skipped)
