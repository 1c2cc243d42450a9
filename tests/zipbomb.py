"""Zip bombs made at test time: a real `torch.save` checkpoint whose tensor entry is a deflated run of zeros.

A deflate stream of N zeros is about N / 1000 bytes, and after a full flush the compressor's output for
each further chunk of zeros is the same bytes, so a 2 GiB (or 8 GiB, zip64) entry is built by repeating
one chunk's output: milliseconds, not a pass of zlib over gigabytes. The CRC is left wrong on purpose: a
reader learns it only after decompressing everything, which is the memory the test watches.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

_CHUNK_BYTES = 1 << 20
_ZIP64 = 0xFFFFFFFF


def deflated_zeros(num_bytes: int) -> bytes:
    """A raw deflate stream that inflates to `num_bytes` zeros (a multiple of 1 MiB)."""
    assert num_bytes % _CHUNK_BYTES == 0 and num_bytes >= 2 * _CHUNK_BYTES
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(_CHUNK_BYTES)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + repeated * (num_bytes // _CHUNK_BYTES - 1) + compressor.flush(zlib.Z_FINISH)


@dataclass(frozen=True)
class _Entry:
    name: str
    data: bytes
    file_size: int
    crc: int
    method: int


def _write_zip(path: Path, entries: list[_Entry]) -> None:
    """A zip with the sizes each entry declares (zip64 fields where they need them), written by hand."""
    body, directory = bytearray(), bytearray()
    for entry in entries:
        name = entry.name.encode()
        big = entry.file_size >= _ZIP64 or len(entry.data) >= _ZIP64
        extra = struct.pack("<2H2Q", 1, 16, entry.file_size, len(entry.data)) if big else b""
        sizes = (_ZIP64, _ZIP64) if big else (len(entry.data), entry.file_size)
        version = 45 if big else 20
        offset = len(body)
        body += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", version, 0, entry.method, 0, 0x21, entry.crc, *sizes, len(name), len(extra)
        )
        body += name + extra + entry.data
        directory += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 45, version, 0, entry.method, 0, 0x21, entry.crc, *sizes,
            len(name), len(extra), 0, 0, 0, 0, offset,
        )  # fmt: skip
        directory += name + extra
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))


def checkpoint_bomb(path: Path, *, declared_bytes: int, forged: bool = False) -> Path:
    """A vidfit-looking checkpoint whose one tensor entry inflates to `declared_bytes` zeros.

    `forged`: the entry is stored (16 real bytes) and only its header declares `declared_bytes`.
    """
    torch.save({"state_dict": {"model.w": torch.zeros(4)}, "hyper_parameters": {"config": {}}}, path)
    with zipfile.ZipFile(path) as archive:
        originals = [(info, archive.read(info)) for info in archive.infolist()]
    entries = []
    for info, data in originals:
        if info.filename.endswith("/data/0") and forged:
            entries.append(_Entry(info.filename, data, declared_bytes, zlib.crc32(data), zipfile.ZIP_STORED))
        elif info.filename.endswith("/data/0"):
            bomb = deflated_zeros(declared_bytes)
            entries.append(_Entry(info.filename, bomb, declared_bytes, 0, zipfile.ZIP_DEFLATED))
        else:
            entries.append(_Entry(info.filename, data, len(data), zlib.crc32(data), zipfile.ZIP_STORED))
    _write_zip(path, entries)
    return path
