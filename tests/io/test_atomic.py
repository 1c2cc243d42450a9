"""Files written whole or not at all: a set of temp files renamed once every writer succeeded."""

import os
import stat
from pathlib import Path

import pytest

from vidfit.io import write_files_atomic, write_text_atomic


def test_writes_every_file_with_the_umask_permissions(tmp_path: Path) -> None:
    a, b = tmp_path / "new" / "a.json", tmp_path / "b.bin"
    previous = os.umask(0o027)
    try:
        written = write_files_atomic({a: lambda p: p.write_text("{}"), b: lambda p: p.write_bytes(b"\x00\x01")})
    finally:
        os.umask(previous)
    assert written == [a, b]
    assert (a.read_text(), b.read_bytes()) == ("{}", b"\x00\x01")
    assert stat.S_IMODE(a.stat().st_mode) == stat.S_IMODE(b.stat().st_mode) == 0o640


def test_a_failed_writer_replaces_nothing_and_leaves_no_temp_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")

    def fail(path: Path) -> None:
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_files_atomic({a: lambda p: p.write_text("new a"), b: fail})
    assert a.read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_text_atomic_writes_utf8_and_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "folder" / "notes.txt"
    assert write_text_atomic(target, "première") == target
    assert write_text_atomic(target, "zweite") == target
    assert target.read_text(encoding="utf-8") == "zweite"
    assert [path.name for path in target.parent.iterdir()] == ["notes.txt"]
