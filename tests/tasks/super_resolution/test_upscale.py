"""`vidfit predict` of a super-resolution checkpoint: chunking from the config, codecs, collisions, failures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MakeVideo, tiny_overrides
from vidfit.apps import predict as upscale
from vidfit.cli import main
from vidfit.config import ConfigError, load_config
from vidfit.io import probe
from vidfit.tasks.super_resolution import _upscale as upscale_module
from vidfit.train import fit

SR = ["experiment.task=super_resolution", "model.scale=3", "model.espcn_features=[8, 4]", "data.num_frames=3"]


@pytest.fixture(scope="module")
def sr_checkpoint(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ESPCN (x3, 3 frames) trained for two steps."""
    output = tmp_path_factory.mktemp("sr")
    overrides = tiny_overrides(tiny_manifest, output, *SR, "data.patch_size=18", "data.patches_per_chunk=1")
    checkpoint = fit(load_config(None, overrides)).last_checkpoint
    assert checkpoint is not None
    return checkpoint


def test_chunk_length_comes_from_train_chunk_infer_size(
    sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = make_video("clip.mp4", num_frames=6, height=8, width=8, codec="libx264", crf=None)
    chunks: list[int] = []
    upscale_video = upscale_module.upscale_video

    def spy(*args: Any, chunk_num_frames: int, **kwargs: Any) -> Any:
        chunks.append(chunk_num_frames)
        return upscale_video(*args, chunk_num_frames=chunk_num_frames, **kwargs)

    monkeypatch.setattr(upscale_module, "upscale_video", spy)
    upscale(sr_checkpoint, [source], out=tmp_path / "a.mp4", overrides=["train.chunk_infer_size=4"], progress=False)
    upscale(sr_checkpoint, [source], out=tmp_path / "b.mp4", progress=False)
    assert chunks == [4, 32]  # -1, the default, streams in chunks of 32 frames
    assert probe(tmp_path / "a.mp4").num_frames == 6
    with pytest.raises(ConfigError, match=r"train\.chunk_infer_size=2 must be >= the model's num_frames=3"):
        upscale(sr_checkpoint, [source], overrides=["train.chunk_infer_size=2"], progress=False)


def test_odd_sizes_need_the_rgb_codec_and_audio_is_said_to_be_dropped(
    sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = make_video("odd.mkv", num_frames=4, height=7, width=9)
    command = ["predict", "--checkpoint", str(sr_checkpoint), str(source), "--out", str(tmp_path / "x.mp4")]
    assert main(command) == 1
    assert "x.mp4: pix_fmt='yuv420p' halves the chroma planes" in capsys.readouterr().err
    assert main([*command, "--codec", "libx264rgb"]) == 0
    meta = probe(tmp_path / "x.mp4")
    assert (meta.width, meta.height, meta.num_frames) == (27, 21, 4)
    assert "audio is not copied" in capsys.readouterr().out


def test_inputs_written_to_one_file_are_refused_before_any_work(sr_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    a_mp4, a_mkv = folder / "a.mp4", folder / "a.mkv"
    a_mp4.touch()
    a_mkv.touch()
    both = re.escape(f"{a_mkv} and {a_mp4} would both be upscaled into ")
    with pytest.raises(ConfigError, match=both + re.escape(str(folder / "a_x3.mp4"))):
        upscale(sr_checkpoint, [folder], progress=False)
    with pytest.raises(ConfigError, match=both + re.escape(str(tmp_path / "o" / "a.mp4"))):
        upscale(sr_checkpoint, [folder], out=tmp_path / "o", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["a.mkv", "a.mp4"] and not (tmp_path / "o").exists()


def test_a_video_that_fails_fails_alone(sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path) -> None:
    good, _ = make_video("good.mp4", num_frames=3, height=8, width=8, codec="libx264", crf=None)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    empty = tmp_path / "empty"
    empty.mkdir()
    run = upscale(sr_checkpoint, [bad, good, empty], out=tmp_path / "out", progress=False)
    assert list(run.outputs) == [str(good)] and run.outputs[str(good)].path == tmp_path / "out" / "good.mp4"
    assert list(run.failures) == [str(empty), str(bad)]
    assert run.failures[str(bad)].startswith("VideoDecodeError: ") and "bad.mp4" in run.failures[str(bad)]
