"""Files written whole or not at all: a set of temp files renamed once every writer succeeded."""

import errno
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from vidfit.io import write_files_atomic
from vidfit.io._atomic import OutputError, check_writable, resolve_inside, write_text_atomic


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

    with pytest.raises(OutputError, match=r"b\.txt: cannot write: disk full"):
        write_files_atomic({a: lambda p: p.write_text("new a"), b: fail})
    assert a.read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_text_atomic_writes_utf8_and_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "folder" / "notes.txt"
    assert write_text_atomic(target, "première") == target
    assert write_text_atomic(target, "zweite") == target
    assert target.read_text(encoding="utf-8") == "zweite"
    assert [path.name for path in target.parent.iterdir()] == ["notes.txt"]


def test_writers_get_temp_files_that_keep_the_extension(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(path: Path) -> None:
        seen.append(path.name)
        path.write_bytes(b"png")

    write_files_atomic({tmp_path / "chart.png": write})
    assert seen[0].startswith(".chart.") and seen[0].endswith(".tmp.png")


def _failing_rename_of(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes renaming a temp file onto `name` fail as a full disk would."""
    real_replace = Path.replace

    def replace(self: Path, target: str | os.PathLike[str]) -> Path:
        if Path(target).name == name and ".tmp" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)


def _write_new(path: Path, *, name: str) -> None:
    path.write_text(f"new {name}")


def test_a_failed_rename_puts_back_the_files_already_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # p.json is renamed first, then p.csv's rename fails: p.json must get its old content back and the
    # new file q.txt, renamed too, must go, so no new file is left beside a stale one.
    (tmp_path / "p.json").write_text("old json")
    (tmp_path / "p.csv").write_text("old csv")
    _failing_rename_of("p.csv", monkeypatch)
    writers: dict[str | os.PathLike[str], Callable[[Path], object]] = {
        tmp_path / name: partial(_write_new, name=name) for name in ("p.json", "q.txt", "p.csv")
    }
    with pytest.raises(OutputError, match=r"p\.csv: cannot write: no space left on the device") as caught:
        write_files_atomic(writers)
    assert caught.value.errno == errno.ENOSPC and caught.value.path == tmp_path / "p.csv"
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"p.json": "old json", "p.csv": "old csv"}


def test_a_temp_file_that_cannot_be_removed_does_not_hide_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if ".tmp" in self.name:
            raise PermissionError(errno.EROFS, "Read-only file system")
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)

    def fail(path: Path) -> None:
        path.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="no space left") as caught:
        write_files_atomic({tmp_path / "a.txt": fail})
    assert any("temp file left behind" in note for note in caught.value.__notes__)


def test_ctrl_c_while_writing_leaves_no_temp_file(tmp_path: Path) -> None:
    def interrupted(path: Path) -> None:
        path.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_files_atomic({tmp_path / "a.txt": lambda p: p.write_text("a"), tmp_path / "b.txt": interrupted})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, for a real full disk; skipped where mounting is not allowed."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_keeps_the_previous_pair_and_leaves_no_temp_file(small_tmpfs: Path) -> None:
    json_path, csv_path = small_tmpfs / "p.json", small_tmpfs / "p.csv"
    write_files_atomic({json_path: lambda p: p.write_text("{}"), csv_path: lambda p: p.write_text("a,b\n")})
    with pytest.raises(OutputError, match=r"p\.csv: cannot write: no space left on the device"):
        write_files_atomic(
            {json_path: lambda p: p.write_text('{"new": 1}'), csv_path: lambda p: p.write_bytes(b"x" * 200_000)}
        )
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["p.csv", "p.json"]
    assert (json_path.read_text(), csv_path.read_text()) == ("{}", "a,b\n")


def test_check_writable_accepts_a_new_nested_path_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "p.json"
    assert check_writable(target) == target
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("layout", "match"),
    [
        ("folder", r"p\.json: is a folder, not a file that can be written"),
        ("file_parent", r"parent: is not a folder, so .*p\.json cannot be written"),
        ("broken_link", r"parent: is a broken symbolic link"),
    ],
)
def test_check_writable_refuses_places_that_cannot_hold_the_file(tmp_path: Path, layout: str, match: str) -> None:
    target = tmp_path / "parent" / "p.json"
    if layout == "folder":
        target.mkdir(parents=True)
    elif layout == "file_parent":
        target.parent.write_text("a file")
    else:
        target.parent.symlink_to(tmp_path / "gone")
    with pytest.raises(OutputError, match=match):
        check_writable(target)


def test_check_writable_refuses_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.geteuid() != 0:  # root writes through permission bits: the injected refusal below stands in
            with pytest.raises(OutputError, match=r"locked: cannot write here: Permission denied"):
                check_writable(folder / "p.json")
        real_touch = Path.touch

        def touch(self: Path, mode: int = 0o666, exist_ok: bool = True) -> None:
            if self.parent == folder:
                raise PermissionError(errno.EACCES, "Permission denied")
            real_touch(self, mode, exist_ok)

        monkeypatch.setattr(Path, "touch", touch)
        with pytest.raises(OutputError, match=r"locked: cannot write here: Permission denied"):
            check_writable(folder / "sub" / "p.json")
    finally:
        folder.chmod(0o755)


def test_resolve_inside_follows_links_and_refuses_ways_out(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / "videos").mkdir(parents=True)
    elsewhere.mkdir()
    (out / "videos" / "v1").symlink_to(elsewhere)
    (out / "inner").symlink_to(out / "videos")
    assert resolve_inside(out, "videos/v0/front.mp4") == out.resolve() / "videos" / "v0" / "front.mp4"
    assert resolve_inside(out, "inner/v0.mp4") == out.resolve() / "videos" / "v0.mp4"
    for relative in ("videos/v1/front.mp4", "../escaped.mp4", str(elsewhere / "abs.mp4")):
        with pytest.raises(ValueError, match=r"resolves to .*elsewhere|resolves to .*escaped|outside the output"):
            resolve_inside(out, relative)
    with pytest.raises(ValueError, match=r"out/videos/v1/front\.mp4: resolves to .*elsewhere/front\.mp4, outside"):
        resolve_inside(out, "videos/v1/front.mp4")
