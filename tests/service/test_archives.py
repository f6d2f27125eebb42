"""Upload archives: kinds, the members an archive may not have, and extraction of documents only."""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from orgtune.errors import OrgtuneError
from orgtune.service.archives import (
    DOCUMENT_SUFFIXES,
    ArchiveLimits,
    Member,
    detect_kind,
    extract_documents,
    inspect_archive,
)

LIMITS = ArchiveLimits()
GOOD = {
    "handbook/intro.md": b"# Intro\nWelcome.\n",
    "handbook/policies/leave.txt": b"Leave is 25 days.\n",
    "handbook/policies/deep/faq.html": b"<p>FAQ</p>",
    "handbook/img/logo.png": b"\x89PNG\r\n\x1a\n",
    "handbook/.DS_Store": b"\0\0\0\1Bud1",
    "__MACOSX/handbook/._intro.md": b"\0\5\x16\7",
}
DOCS = ["handbook/intro.md", "handbook/policies/deep/faq.html", "handbook/policies/leave.txt"]


def make_zip(
    path: Path | io.BytesIO, files: dict[str, bytes], *, infos: list[tuple[zipfile.ZipInfo, bytes]] = ()
) -> Path | io.BytesIO:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("handbook/"), b"")
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in infos:
            zf.writestr(info, data)
    return path


def tar_member(name: str, data: bytes = b"", type: bytes = tarfile.REGTYPE, **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size = type, len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, data


def make_tar(path: Path, files: dict[str, bytes], *, extra: list[tuple[tarfile.TarInfo, bytes]] = ()) -> Path:
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode) as tf:
        tf.addfile(tar_member("handbook", type=tarfile.DIRTYPE, mode=0o777)[0])
        for name, data in files.items():  # modes, owners and times from the archive must not be applied
            info, data = tar_member(name, data, mode=0o777, uid=12345, mtime=0)
            tf.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tf.addfile(info, io.BytesIO(data) if data else None)
    return path


def snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture
def area(tmp_path):
    """tmp_path/in (archives), tmp_path/out (dest's parent), tmp_path/sentinel (a sibling that must stay empty)."""
    for d in ("in", "out", "sentinel"):
        (tmp_path / d).mkdir()
    return tmp_path


def assert_rejected(area: Path, archive: Path, *needles: str) -> OrgtuneError:
    """Both inspect and extract refuse, the message names what it must, and nothing is written anywhere."""
    before = snapshot(area)
    dest = area / "out" / "docs"
    with pytest.raises(OrgtuneError) as inspected:
        inspect_archive(archive, LIMITS)
    with pytest.raises(OrgtuneError) as extracted:
        extract_documents(archive, dest, LIMITS)
    for err in (inspected.value, extracted.value):
        for needle in (str(archive), *needles):
            assert needle in str(err)
        assert err.fix
    assert not dest.exists()
    assert snapshot(area) == before
    assert not list((area / "sentinel").iterdir())
    return extracted.value


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "tar"])
def test_good_archive_extracts_exactly_its_documents(area, fmt):
    archive = area / "in" / f"docs.{fmt}"
    make_zip(archive, GOOD) if fmt == "zip" else make_tar(archive, GOOD)
    members = inspect_archive(archive, LIMITS)
    assert Member("handbook/img/logo.png", 8, False) in members
    assert sorted(m.name for m in members if m.is_document) == DOCS

    dest = area / "out" / "docs"
    paths = extract_documents(archive, dest, LIMITS)
    assert paths == [dest / n for n in DOCS]
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and p.name != "COMPLETE") == DOCS
    for name in DOCS:
        p = dest / name
        assert p.read_bytes() == GOOD[name]
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        assert p.stat().st_mtime > 1e9  # the archive's mtime (0) was not applied
    for d in (dest / "handbook", dest / "handbook/policies", dest / "handbook/policies/deep"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert not list((area / "sentinel").iterdir())
    assert sorted(p.name for p in (area / "out").iterdir()) == ["docs"]  # no staging folder left


BAD_NAMES = ["../x.md", "handbook/../../x.md", "/etc/x.md", "C:\\x.md", "\\\\server\\share\\x.md", "a\\..\\..\\x.md"]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_names_outside_the_archive_are_refused(area, name, fmt):
    archive = area / "in" / f"bad.{fmt}"
    if fmt == "zip":
        make_zip(archive, {**GOOD, name: b"escaped"})
    else:
        make_tar(archive, {**GOOD, name: b"escaped"})
    assert_rejected(area, archive, repr(name))


def test_absolute_path_into_tmp_is_refused_and_not_written(area):
    target = area / "sentinel" / "escaped.md"
    archive = make_tar(area / "in" / "abs.tar", {**GOOD, str(target): b"escaped"})
    assert_rejected(area, archive, str(target), "absolute")


def test_nul_byte_in_a_zip_name_is_refused(area):
    buf = io.BytesIO()
    make_zip(buf, {**GOOD, "handbook/evilXname.md": b"x"})
    archive = area / "in" / "nul.zip"
    archive.write_bytes(buf.getvalue().replace(b"evilXname", b"evil\0name"))
    assert_rejected(area, archive, "evil\\x00name", "NUL")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_links_and_special_files_are_refused(area, kind):
    info, _ = tar_member("handbook/special.md", type=kind, linkname="/etc/passwd")
    archive = make_tar(area / "in" / "special.tar.gz", GOOD, extra=[(info, b"")])
    what = "link" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "special file"
    assert_rejected(area, archive, "'handbook/special.md'", what)


@pytest.mark.parametrize("mode,what", [(0o120777, "link"), (0o020644, "special file")])
def test_zip_symlink_and_device_entries_are_refused(area, mode, what):
    info = zipfile.ZipInfo("handbook/link.md")
    info.external_attr = mode << 16
    archive = make_zip(area / "in" / "link.zip", GOOD, infos=[(info, b"/etc/passwd")])
    assert_rejected(area, archive, "'handbook/link.md'", what)


def test_ten_thousand_entry_zip_is_refused_at_the_entry_cap(area):
    archive = area / "in" / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(10_000):
            zf.writestr(f"d/{i}.txt", b"")
    assert_rejected(area, archive, "2000", "entry cap")


def test_ten_thousand_entry_tar_gz_is_refused_at_the_entry_cap(area):
    archive = make_tar(area / "in" / "many.tar.gz", {f"handbook/{i}.txt": b"x" for i in range(10_000)})
    err = assert_rejected(area, archive, "2000", "entry cap")
    assert "handbook/1999.txt" in str(err)  # stopped at the first entry past the cap: the 2001st (with the folder)


def test_zip_whose_end_record_understates_its_entries_is_still_stopped_at_the_cap(area):
    archive = area / "in" / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(2500):
            zf.writestr(f"d/{i}.txt", b"")
    data = bytearray(archive.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 3, 3)  # entries on this disk, entries in all
    archive.write_bytes(bytes(data))
    err = assert_rejected(area, archive, "entry cap")
    assert "'d/2000.txt'" in str(err)


def test_tar_gz_whose_headers_hold_more_data_than_allowed_is_refused_while_streaming(area):
    info, data = tar_member("handbook/intro.md", b"x")
    info.pax_headers = {"comment": "z" * 200_000}  # tarfile reads a pax header into memory whole
    archive = make_tar(area / "in" / "pax.tar.gz", {}, extra=[(info, data)])
    with pytest.raises(OrgtuneError, match="more data than its headers allow"):
        inspect_archive(archive, ArchiveLimits(max_entries=2, max_total_bytes=1000))
    assert inspect_archive(archive, LIMITS) == [Member("handbook/intro.md", 1, True)]


def test_zip_bomb_is_refused_by_its_ratio(area):
    archive = area / "in" / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme.md", b"# hi\n")
        with zf.open("handbook/zeros.txt", "w") as f:
            chunk = bytes(1 << 20)
            for _ in range(50):
                f.write(chunk)
    assert archive.stat().st_size < 1 << 20
    assert_rejected(area, archive, "'handbook/zeros.txt'", "max_ratio")


def test_member_and_total_size_caps(area):
    archive = make_zip(area / "in" / "docs.zip", GOOD)
    with pytest.raises(OrgtuneError, match=r"'handbook/intro.md'.*max_member_bytes"):
        inspect_archive(archive, ArchiveLimits(max_member_bytes=10))
    with pytest.raises(OrgtuneError, match="max_total_bytes"):
        inspect_archive(archive, ArchiveLimits(max_total_bytes=20))
    with pytest.raises(OrgtuneError, match="max_total_bytes"):
        extract_documents(archive, area / "out" / "docs", ArchiveLimits(max_total_bytes=20))
    assert not (area / "out" / "docs").exists()


@pytest.mark.parametrize("second", ["handbook/intro.md", "./handbook//intro.md", "handbook\\intro.md"])
def test_duplicate_names_are_refused(area, second):
    info, data = tar_member(second, b"again")
    archive = make_tar(area / "in" / "dup.tar.gz", GOOD, extra=[(info, data)])
    assert_rejected(area, archive, repr(second), "repeats")


def test_a_file_that_is_also_a_folder_is_refused(area):
    archive = make_tar(area / "in" / "clash.tar", {"a.md": b"x", "a.md/b.md": b"y"})
    assert_rejected(area, archive, "'a.md/b.md'", "also a file")


@pytest.mark.parametrize("declared", [5, 1000])
def test_zip_whose_header_lies_about_the_size_is_refused_at_extraction(area, declared):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("handbook/intro.md", b"x" * 100)
    data = bytearray(buf.getvalue())
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # the central directory's uncompressed size
    archive = area / "in" / "lying.zip"
    archive.write_bytes(bytes(data))
    inspect_archive(archive, LIMITS)  # the headers alone look fine
    with pytest.raises(OrgtuneError, match="'handbook/intro.md'"):
        extract_documents(archive, area / "out" / "docs", LIMITS)
    assert not (area / "out" / "docs").exists() and list((area / "out").iterdir()) == []


def test_archive_without_documents_is_refused(area):
    archive = make_zip(area / "in" / "pics.zip", {"a/logo.png": b"png", "a/.hidden.md": b"x"})
    err = assert_rejected(area, archive, "no documents")
    assert "a/logo.png" in str(err)


@pytest.mark.parametrize("head", [b"", b"hello world", b"\x1f\x8bnot really gzip at all" * 30])
def test_unreadable_archive_is_an_orgtune_error(area, head):
    archive = area / "in" / "broken.bin"
    archive.write_bytes(head)
    with pytest.raises(OrgtuneError, match="broken.bin"):
        inspect_archive(archive, LIMITS)


def docx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def tar_bytes(gz: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        info, data = tar_member("a.md", b"x")
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    "filename,head,kind",
    [
        ("train.jsonl", b'{"messages": []}\n', "jsonl"),
        ("Manual.DOCX", docx_bytes(), "document"),
        ("notes.md", b"# Notes\n", "document"),
        ("page.htm", b"<html>", "document"),
        ("spec.pdf", b"%PDF-1.7\n", "document"),
        ("docs.zip", docx_bytes(), "archive"),
        ("docs.tar.gz", tar_bytes(gz=True), "archive"),
        ("docs.tgz", tar_bytes(gz=True), "archive"),
        ("docs.tar", tar_bytes(gz=False), "archive"),
    ],
    ids=lambda v: v if isinstance(v, str) else "head",  # a gzip header carries the time: ids must not (xdist)
)
def test_detect_kind(filename, head, kind):
    assert detect_kind(filename, head[:512]) == kind


@pytest.mark.parametrize(
    "filename,head",
    [
        ("docs.zip", b"this is not a zip"),
        ("docs.tar.gz", b"PK\x03\x04..."),
        ("manual.docx", b"\xd0\xcf\x11\xe0 legacy .doc"),
        ("spec.pdf", b"<html>"),
        ("notes.txt", b"PK\x03\x04 a zip in disguise"),
        ("train.jsonl", b"\x1f\x8b\x08"),
    ],
)
def test_detect_kind_refuses_content_that_does_not_match_the_name(filename, head):
    with pytest.raises(OrgtuneError, match="but the content is") as e:
        detect_kind(filename, head)
    assert filename in str(e.value) and e.value.fix


@pytest.mark.parametrize("filename", ["model.bin", "archive.rar", "docs.gz", "README"])
def test_detect_kind_refuses_unknown_extensions(filename):
    with pytest.raises(OrgtuneError) as e:
        detect_kind(filename, b"whatever")
    assert filename in str(e.value)
    for accepted in (".jsonl", ".docx", ".zip", ".tar.gz"):
        assert accepted in e.value.fix


def test_document_suffixes_match_the_ingest_stage():
    from orgtune.ingest.read import SUFFIXES

    assert set(DOCUMENT_SUFFIXES) == set(SUFFIXES)
