"""read_checkpoint: every bad checkpoint is one CheckpointError naming the file; nothing in a pickle runs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.zipbomb import checkpoint_bomb
from vidfit.io._checkpoint import CheckpointError, read_checkpoint, read_checkpoint_header

_HEADER = {"num_classes": 4, "backbone": "tiny"}


class _Payload:
    """Unpickling this runs a command: weights_only loading must refuse it before it can."""

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.system, ("touch pwned",))


def _good(path: Path) -> Path:
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "hyper_parameters": _HEADER}, path)
    return path


def test_reads_a_checkpoint_and_its_header(tmp_path: Path) -> None:
    path = _good(tmp_path / "good.ckpt")
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.arange(3.0))
    assert read_checkpoint_header(path) == _HEADER
    legacy = tmp_path / "legacy.ckpt"
    torch.save({"hyper_parameters": _HEADER}, legacy, _use_new_zipfile_serialization=False)
    assert read_checkpoint_header(legacy) == _HEADER


def _truncated(path: Path) -> None:
    _good(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


_BAD_KINDS: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing": (lambda path: None, "no such checkpoint file"),
    "folder": (lambda path: path.mkdir(), "is a folder, not a checkpoint file"),
    "empty": (lambda path: path.write_bytes(b""), r"is empty \(0 bytes\), not a PyTorch checkpoint"),
    "truncated": (_truncated, r"not a PyTorch checkpoint \(truncated or not a zip file\)"),
    "text": (lambda path: path.write_text("epoch: 3\n" * 20), r"not a PyTorch checkpoint \(truncated or not a zip"),
    "bare pickle payload": (
        lambda path: path.write_bytes(pickle.dumps(_Payload())),
        r"not a PyTorch checkpoint \(a bare pickle, not a zip file\); refused without running",
    ),
    "zip payload": (
        lambda path: torch.save({"hyper_parameters": _Payload()}, path),
        r"holds objects other than tensors and plain data, refused \(weights_only=True\): .*system",
    ),
    "not a dict": (lambda path: torch.save([1, 2], path), r"holds a list, not a checkpoint \(a dict\)"),
}


@pytest.mark.parametrize("kind", list(_BAD_KINDS))
@pytest.mark.parametrize("reader", [read_checkpoint, read_checkpoint_header])
def test_every_bad_checkpoint_is_one_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, reader: Callable[[Path], dict]
) -> None:
    monkeypatch.chdir(tmp_path)
    make, reason = _BAD_KINDS[kind]
    path = tmp_path / "model.ckpt"
    make(path)
    with pytest.raises(CheckpointError, match=f"^{path}: {reason}") as caught:
        reader(path)
    assert "mmap can only be used" not in str(caught.value)
    assert caught.value.path == path
    assert not (tmp_path / "pwned").exists()


def test_a_header_is_required(tmp_path: Path) -> None:
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}}, path)
    assert read_checkpoint(path) == {"state_dict": {}}
    with pytest.raises(CheckpointError, match="has no hyper_parameters"):
        read_checkpoint_header(path)


def test_checkpoint_error_is_a_value_error() -> None:
    assert issubclass(CheckpointError, ValueError)


_GIB = 1 << 30


@pytest.mark.parametrize("forged", [False, True], ids=["deflated zeros", "forged stored size"])
@pytest.mark.parametrize("declared_gib", [2, 8])
@pytest.mark.parametrize("reader", [read_checkpoint, read_checkpoint_header])
def test_a_zip_bomb_is_refused_before_torch_inflates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: Callable[[Path], dict], declared_gib: int, forged: bool
) -> None:
    bomb = checkpoint_bomb(tmp_path / "bomb.ckpt", declared_bytes=declared_gib * _GIB, forged=forged)
    assert bomb.stat().st_size < declared_gib * _GIB // 500
    monkeypatch.setattr(torch, "load", _never_called)
    reason = "forged zip header" if forged else f"declare {declared_gib}.0 GiB uncompressed, .* refused as a zip bomb"
    with pytest.raises(CheckpointError, match=f"^{bomb}: .*{reason}"):
        reader(bomb)


def _never_called(*args: object, **kwargs: object) -> None:
    raise AssertionError("torch.load was reached: the bomb would have been inflated")


def test_a_deflated_checkpoint_within_the_limit_still_loads(tmp_path: Path) -> None:
    stored = _good(tmp_path / "stored.ckpt")
    deflated = tmp_path / "deflated.ckpt"
    with zipfile.ZipFile(stored) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    assert torch.equal(read_checkpoint(deflated)["state_dict"]["w"], torch.arange(3.0))
    assert read_checkpoint_header(deflated) == _HEADER


_MEASURE = """
import resource, sys, time
from vidfit.io._checkpoint import CheckpointError, read_checkpoint
# A cap well above what refusing needs and well below the bomb: the old code ran into it.
data = int(open("/proc/self/status").read().split("VmData:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_DATA, (data + (1 << 30), resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_checkpoint(sys.argv[1])
except CheckpointError as error:
    print(error)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.slow  # a fresh interpreter importing torch
def test_a_zip_bomb_costs_no_memory(tmp_path: Path) -> None:
    bomb = checkpoint_bomb(tmp_path / "bomb.ckpt", declared_bytes=2 * _GIB)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(bomb)], capture_output=True, text=True, timeout=300, check=True
    )
    message, growth = done.stdout.strip().splitlines()
    assert "refused as a zip bomb" in message, done.stdout + done.stderr
    assert int(growth) < 64 << 20, f"peak memory grew by {int(growth) >> 20} MiB"
