"""`merge` trusts no shard: made alike (checkpoint, settings), CSVs whole against their JSON, prepared files intact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from vidfit.apps import merge, predict, prepare
from vidfit.cli import main
from vidfit.data import load_manifest

SETTINGS = {"size": (16, 16), "gop": 4, "crf": 10, "progress": False}


@pytest.fixture(scope="module")
def shards(tiny_manifest: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The validation videos predicted in two shards (2 videos of 16 frames each), beside `p.json`."""
    out = tmp_path_factory.mktemp("shards") / "p.json"
    for index in range(2):
        predict(tiny_checkpoint, [tiny_manifest], out=out, split="val", shard=f"{index}/2", progress=False)
    return out


@pytest.fixture
def copied(shards: Path, tmp_path: Path) -> Path:
    """A copy of the shards' files, free to damage."""
    for path in shards.parent.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path / shards.name


def _refused(target: Path, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        merge(target)
    assert not target.exists() and not target.with_suffix(".csv").exists()


def test_whole_shards_merge(copied: Path) -> None:
    result = merge(copied)
    assert (result.num_shards, result.num_videos, result.failures) == (2, 4, {})
    assert len(copied.with_suffix(".csv").read_text().splitlines()) == 1 + 4 * 16


def test_shards_of_two_checkpoints_or_two_settings_are_refused(
    tiny_manifest: Path, tiny_checkpoint: Path, copied: Path, tmp_path: Path
) -> None:
    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    name = next(key for key, value in state["state_dict"].items() if value.is_floating_point())
    state["state_dict"][name] = state["state_dict"][name] + 1  # another checkpoint of the same run
    other = tmp_path / "other.ckpt"
    torch.save(state, other)
    predict(other, [tiny_manifest], out=copied, split="val", shard="1/2", progress=False)
    sha = "'[0-9a-f]{64}'"
    _refused(copied, r"p\.shard-1-of-2\.record\.json: shard 1/2 was made with other settings than shard 0/2: "
                     rf"checkpoint_sha256={sha} where p\.shard-0-of-2\.record\.json has {sha}")  # fmt: skip
    overrides = ["train.chunk_infer_size=8"]
    predict(tiny_checkpoint, [tiny_manifest], out=copied, split="val", shard="1/2", overrides=overrides, progress=False)
    _refused(copied, re.escape("overrides=['train.chunk_infer_size=8'] where p.shard-0-of-2.record.json has []"))


def test_a_truncated_or_repeated_shard_csv_is_refused(copied: Path) -> None:
    csv_path = copied.with_name("p.shard-1-of-2.csv")
    whole = csv_path.read_bytes().decode()
    lines = whole.splitlines(keepends=True)
    video = lines[1].split(",")[0]
    for cut in (len(whole) - len(lines[-1]) // 2, len(whole) - 1):  # a copy cut short inside a row, or its "\r\n"
        csv_path.write_bytes(whole.encode()[:cut])
        _refused(
            copied, r"p\.shard-1-of-2\.csv: the file ends inside a row \(it was cut short\): predict shard 1/2 again"
        )
    csv_path.write_bytes("".join(lines[:-5]).encode())  # ... or at the end of one: whole rows, too few
    last = lines[-1].split(",")[0]
    _refused(copied, rf"p\.shard-1-of-2\.csv: video '{last}' has 11 rows where its JSON gives 16 \(frames \[0, 16\)")
    csv_path.write_bytes((whole + "".join(lines[1:])).encode())  # appended twice
    _refused(copied, rf"video '{video}' has 32 rows where its JSON gives 16 .*: the CSV was cut short, repeated or")
    csv_path.write_bytes((whole + whole).encode())  # the whole file twice: its header is a foreign row
    _refused(copied, r"p\.shard-1-of-2\.csv: rows of videos \['video_id'\] that p\.shard-1-of-2\.json does not list")
    csv_path.write_bytes("".join([*lines[:5], lines[5].replace(",", ",,", 1), *lines[6:]]).encode())
    _refused(copied, r"p\.shard-1-of-2\.csv: row 6 has 6 fields where the header has 5: predict shard 1/2 again")
    csv_path.write_bytes(whole.encode())
    assert merge(copied).num_videos == 4


def test_a_bad_shard_json_is_reported_by_its_file_name(copied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_path = copied.with_name("p.shard-0-of-2.json")
    json_path.write_text(json_path.read_text()[:-40])
    assert main(["merge", str(copied)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {json_path}: not the predictions of shard 0/2: ") and "predict the shard" in error
    json_path.write_text(json.dumps({"results": {}}))
    _refused(copied, r"p\.shard-0-of-2\.json: not the predictions of shard 0/2: no results and vidfit sections")
    record = copied.with_name("p.shard-0-of-2.record.json")
    document = json.loads(record.read_text())
    del document["settings"]  # as vidfit before the checks wrote it
    record.write_text(json.dumps(document))
    _refused(copied, r"p\.shard-0-of-2\.record\.json: no 'settings' field: .*: run the shard again")


@pytest.mark.slow
def test_a_prepared_shards_deleted_or_truncated_video_or_other_settings_are_refused(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "prepared"
    written = [prepare(tiny_manifest, out_dir=out, shard=f"{i}/2", **SETTINGS) for i in range(2)]
    target = out / tiny_manifest.name
    video = load_manifest(written[1]).videos[0].views["front"]
    content = video.read_bytes()
    name = video.relative_to(out).as_posix()
    video.unlink()
    _refused(target, rf"manifest_kpt\.shard-1-of-2\.record\.json: files of shard 1/2 changed since it was prepared: "
                     rf"{name} is missing: prepare the shard again")  # fmt: skip
    video.write_bytes(content[: len(content) // 2])
    _refused(target, rf"{name} has {len(content) // 2} bytes where the shard wrote {len(content)}")
    video.write_bytes(content)
    assert merge(target).num_videos == 8
    target.unlink()
    record = out / "manifest_kpt.shard-1-of-2.record.json"
    document = json.loads(record.read_text())
    assert document["settings"] == {"size": [16, 16], "gop": 4, "crf": 10}
    record.write_text(json.dumps({**document, "settings": {"size": [16, 16], "gop": 8, "crf": 10}}))  # `--gop 8`
    _refused(target, r"manifest_kpt\.shard-1-of-2\.record\.json: .* gop=8 where manifest_kpt\.shard-0-of-2\.record")
