"""Remote and file-object videos, read whole and exactly: a range server, file objects, a remote manifest in
predict, and a file that changes while it is read."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tests.servers import (  # noqa: F401  (fixtures)
    LARGE_FRAMES,
    LARGE_SIZE,
    Behaviour,
    NoiseVideo,
    ServedFiles,
    http_server,
    large_video,
    serve,
    write_noise_video,
)
from vidfit.apps import predict
from vidfit.data import load_manifest
from vidfit.io import RemoteChangedError, VideoReader, probe


def test_every_frame_over_a_range_server_matches_the_local_decode(
    large_video: NoiseVideo,  # noqa: F811
    http_server: ServedFiles,  # noqa: F811
) -> None:
    shutil.copy(large_video.path, http_server.root / "v.mp4")
    with VideoReader(f"{http_server.url}/v.mp4") as reader:
        assert torch.equal(reader.get_frames(0, len(reader)).data, large_video.frames)
        assert torch.equal(reader.get_frames_at([100, 101, 199]).data, large_video.frames[[100, 101, 199]])
        chunks = [c.data.clone() for c in reader.iter_chunks(chunk_num_frames=10, overlap_num_frames=3, start=4)]
    assert torch.equal(torch.cat([chunks[0], *(c[3:] for c in chunks[1:])]), large_video.frames[4:])
    assert all(asked.startswith("bytes=") for asked in http_server.ranges)  # ranges only, never the whole file


@pytest.mark.parametrize("kind", ["BytesIO", "open"])
def test_every_frame_from_a_file_object_matches_the_local_decode(
    large_video: NoiseVideo,  # noqa: F811
    kind: str,
) -> None:
    file = io.BytesIO(large_video.path.read_bytes()) if kind == "BytesIO" else large_video.path.open("rb")
    with file:
        assert probe(file).num_frames == len(large_video.frames)
        with VideoReader(file) as first, VideoReader(file) as second:  # one file object under two readers
            assert torch.equal(first.get_frames(0, 20).data, large_video.frames[:20])
            assert torch.equal(second.get_frames(5, 200).data, large_video.frames[5:])
            assert torch.equal(first.get_frames(20, 200).data, large_video.frames[20:])
        assert not file.closed


@pytest.mark.parametrize("validators", ["etag", "last-modified", "none"])
def test_a_file_that_changes_while_being_read_is_one_error_naming_the_url(
    large_video: NoiseVideo,  # noqa: F811
    tmp_path: Path,
    validators: str,
) -> None:
    other = write_noise_video(
        tmp_path / "other.mp4", num_frames=LARGE_FRAMES, size=LARGE_SIZE, seed=1
    ).path.read_bytes()
    with serve(tmp_path, Behaviour(validators=validators)) as served:  # type: ignore[arg-type]
        served_file = tmp_path / "v.mp4"
        original = large_video.path.read_bytes()
        served_file.write_bytes(original)
        url = f"{served.url}/v.mp4"
        with VideoReader(url) as reader:
            assert torch.equal(reader.get_frames(0, 2).data, large_video.frames[:2])
            # The same size with new bytes past the first half (seen by ETag or Last-Modified), or a new size.
            half = len(original) // 2
            changed = original[:half] + other[half : len(original)] + (b"\0" * 64 if validators == "none" else b"")
            served_file.write_bytes(changed)
            later = served_file.stat().st_mtime_ns + 10**10  # Last-Modified counts whole seconds
            os.utime(served_file, ns=(later, later))
            with pytest.raises(RemoteChangedError, match=rf"^{re.escape(url)}: the file changed while being read"):
                reader.get_frames(150, 200)


@pytest.mark.slow
def test_predict_reads_a_remote_manifest(
    tiny_manifest: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vidfit.cli import main

    # The command adds a handler on the captured stderr to vidfit's logger: gone with this test.
    monkeypatch.setattr(logging.getLogger("vidfit"), "handlers", [])

    manifest = load_manifest(tiny_manifest)
    root = tmp_path / "www"
    shutil.copytree(Path(manifest.root), root)
    videos = [
        {
            "id": v.id,
            "split": v.split,
            "views": {k: Path(p).relative_to(manifest.root).as_posix() for k, p in v.views.items()},
        }
        for v in manifest.videos
    ]
    (root / "remote.yaml").write_text(yaml.safe_dump({"labels": list(manifest.labels), "root": ".", "videos": videos}))
    local = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "local.json", progress=False)
    with serve(root) as served:
        url = f"{served.url}/remote.yaml"
        remote = predict(tiny_checkpoint, [url], out=tmp_path / "remote.json", progress=False)
        assert remote.failures == {} and sorted(remote.predictions) == sorted(local.predictions)
        for video_id, prediction in remote.predictions.items():
            assert torch.allclose(prediction.frame_logits, local.predictions[video_id].frame_logits)
        capsys.readouterr()
        assert main(["predict", url, "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "cli.json")]) == 0
    assert "failed" not in capsys.readouterr().err
    assert sorted(json.loads((tmp_path / "cli.json").read_text())["results"]) == sorted(local.predictions)


def test_urls_given_as_inputs_stay_urls(tmp_path: Path) -> None:
    from vidfit.config import ConfigError
    from vidfit.infer import expand_inputs
    from vidfit.infer._inputs import VideoFile
    from vidfit.tasks.super_resolution._upscale import _upscale_targets

    url = "https://host/clips/a.mp4?signature=x"
    assert expand_inputs([url], split=None) == ([VideoFile(url, url)], {})
    assert _upscale_targets([url], out=tmp_path / "up", split=None, scale=2)[0] == [(url, tmp_path / "up" / "a.mp4")]
    with pytest.raises(ConfigError, match=rf"^{re.escape(url)} is a URL, with no folder beside it .*: give --out$"):
        _upscale_targets([url], out=None, split=None, scale=2)
