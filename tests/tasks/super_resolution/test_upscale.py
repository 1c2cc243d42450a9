"""`vidfit predict` of a super-resolution checkpoint: chunking from the config, codecs, collisions, failures."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
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


def test_odd_sizes_need_the_rgb_codec(
    sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = make_video("odd.mkv", num_frames=4, height=7, width=9)
    command = ["predict", "--checkpoint", str(sr_checkpoint), str(source), "--out", str(tmp_path / "x.mp4")]
    assert main(command) == 1
    assert "x.mp4: pix_fmt='yuv420p' halves the chroma planes" in capsys.readouterr().err
    assert main([*command, "--codec", "libx264rgb"]) == 0
    meta = probe(tmp_path / "x.mp4")
    assert (meta.width, meta.height, meta.num_frames) == (27, 21, 4)
    assert "audio is not copied" not in capsys.readouterr().out  # the input has none


def _with_audio(path: Path, *, num_frames: int = 4) -> Path:
    """An 8x8 H.264 video with an AAC track beside it."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 8, 8, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        for _ in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), dtype=np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        sound.sample_rate = 16000
        container.mux(audio.encode(sound))
        container.mux(video.encode())
        container.mux(audio.encode())
    return path


def test_audio_is_said_to_be_dropped_only_when_there_is_some(
    sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    silent, _ = make_video("silent.mp4", num_frames=4, height=8, width=8, codec="libx264", crf=None)
    loud = _with_audio(tmp_path / "loud.mp4")
    command = ["predict", "--checkpoint", str(sr_checkpoint), str(silent)]
    assert main([*command, "--out", str(tmp_path / "a")]) == 0
    assert "audio is not copied" not in capsys.readouterr().out
    assert main([*command, str(loud), "--out", str(tmp_path / "b")]) == 0
    assert "audio is not copied: 1 of the 2 inputs had audio" in capsys.readouterr().out


@pytest.mark.parametrize("layout", ["a folder at one output", "a file as the output folder"])
def test_the_output_place_is_checked_before_any_video_is_upscaled(
    sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], layout: str,
) -> None:  # fmt: skip
    first, _ = make_video("a.mp4", num_frames=3, height=8, width=8, codec="libx264", crf=None)
    second, _ = make_video("b.mp4", num_frames=3, height=8, width=8, codec="libx264", crf=None)
    out = tmp_path / "out"
    if layout == "a folder at one output":
        (out / "b.mp4").mkdir(parents=True)
    else:
        out.write_text("a file where the output folder should be\n")
    upscaled: list[Any] = []
    monkeypatch.setattr(upscale_module, "upscale_video", lambda *args, **kwargs: upscaled.append(args))
    code = main(["predict", "--checkpoint", str(sr_checkpoint), str(first), str(second), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and not upscaled, err
    assert ("b.mp4: is a folder" if layout == "a folder at one output" else "out: is not a folder") in err, err


_UPSCALE = """
import sys
from vidfit.cli import main
sys.exit(main(["predict", "--checkpoint", sys.argv[1], sys.argv[2], "--out", sys.argv[3], "--codec", "libx264rgb"]))
"""


@pytest.mark.slow  # a fresh interpreter importing torch
def test_sigterm_while_upscaling_leaves_no_temp_file(
    sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path
) -> None:
    source, _ = make_video("long.mkv", num_frames=600, height=64, width=64)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", _UPSCALE, str(sr_checkpoint), str(source), str(out / "long.mp4")],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".*tmp*")):
            assert process.poll() is None and time.monotonic() < deadline, "upscaling never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert err.rstrip().splitlines()[-1] == "stopped by SIGTERM", err
    assert list(out.iterdir()) == [], "a temp file or a partial video was left"


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


def test_a_clip_range_is_refused_for_its_video_alone(
    sr_checkpoint: Path, make_video: MakeVideo, tmp_path: Path
) -> None:
    for name in ("whole", "cut"):
        make_video(f"{name}.mp4", num_frames=4, height=8, width=8, codec="libx264", crf=None)
    videos = [
        {"id": "whole", "views": {"front": "whole.mp4"}},
        {"id": "cut", "views": {"front": "cut.mp4"}, "end": 0.1},
    ]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"labels": [], "root": ".", "videos": videos}), encoding="utf-8")
    run = upscale(sr_checkpoint, [manifest], out=tmp_path / "up", progress=False)
    assert list(run.failures) == ["cut"] and "clip range (start/end) would be ignored" in run.failures["cut"]
    assert (tmp_path / "up" / "whole" / "front.mp4").is_file() and not (tmp_path / "up" / "cut").exists()
