"""Shard records: the settings and file sizes `merge` checks, read back as written; bad records named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vidfit.infer._shards import Shard, file_sha256, file_sizes, read_shard_record, record_path, write_shard_record


def test_a_record_holds_the_settings_and_the_sizes_of_the_shards_files(tmp_path: Path) -> None:
    output = tmp_path / "manifest.shard-1-of-2.yaml"
    output.write_text("videos: []\n")
    (tmp_path / "videos" / "a").mkdir(parents=True)
    (tmp_path / "videos" / "a" / "front.mp4").write_bytes(b"x" * 1000)
    keypoints = tmp_path / "keypoints" / "a" / "front"
    keypoints.mkdir(parents=True)
    for index in range(2):
        (keypoints / f"{index:06d}_sam3d_body.npz").write_bytes(b"k" * (10 + index))
    sizes = file_sizes([tmp_path / "videos" / "a" / "front.mp4", keypoints], folder=tmp_path)
    assert sizes == {
        "videos/a/front.mp4": 1000,
        "keypoints/a/front/000000_sam3d_body.npz": 10,
        "keypoints/a/front/000001_sam3d_body.npz": 11,
    }
    settings = {"size": [16, 16], "gop": 4, "crf": 18}
    written = write_shard_record(
        output, shard=Shard(1, 2), kind="manifest", video_ids=["b", "a"], failures={}, settings=settings, files=sizes
    )
    assert written == record_path(output) == tmp_path / "manifest.shard-1-of-2.record.json"
    record = read_shard_record(written)
    assert (record.shard, record.video_ids, record.settings, record.files) == (Shard(1, 2), ("b", "a"), settings, sizes)
    assert record.path == written and record.changed_files() == []
    (tmp_path / "videos" / "a" / "front.mp4").write_bytes(b"x" * 400)
    (keypoints / "000001_sam3d_body.npz").unlink()
    assert record.changed_files() == [
        "videos/a/front.mp4 has 400 bytes where the shard wrote 1000",
        "keypoints/a/front/000001_sam3d_body.npz is missing",
    ]


def test_the_checkpoint_hash_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    checkpoint = tmp_path / "last.ckpt"
    checkpoint.write_bytes(bytes(range(256)) * 5000)  # larger than one read block
    assert file_sha256(checkpoint) == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_bad_or_older_records_are_named(tmp_path: Path) -> None:
    path = write_shard_record(
        tmp_path / "p.shard-0-of-2.json", shard=Shard(0, 2), kind="predictions", video_ids=["a"], failures={},
        settings={"checkpoint_sha256": "0" * 64, "overrides": [], "split": None},
    )  # fmt: skip
    document = json.loads(path.read_text())
    path.write_text(json.dumps({key: value for key, value in document.items() if key != "files"}))
    with pytest.raises(ValueError, match=r"p\.shard-0-of-2\.record\.json: no 'files' field: .*: run the shard again"):
        read_shard_record(path)
    path.write_text(path.read_text()[:-10])
    with pytest.raises(ValueError, match=r"p\.shard-0-of-2\.record\.json: not a shard record written by vidfit"):
        read_shard_record(path)
