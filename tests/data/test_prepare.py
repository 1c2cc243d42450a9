"""prepare_manifest: copies decode at the new size with every frame and its time, and the manifest loads."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from rich.progress import Progress, TaskID

from tests.data.conftest import MakeDataset, WriteManifest, offset_pts, write_keypoints
from vidfit.cli import main
from vidfit.data import ManifestError, VideoDataset, VideoDatasetConfig, VideoEntry, load_manifest, prepare_manifest
from vidfit.data._chunks import build_chunk_index
from vidfit.data._prepare import TranscodeError, _relocate
from vidfit.io import VideoReader, probe, write_video


def grey_video(path: Path, num_frames: int, *, fps: float, begin_seconds: float = 0.0) -> str:
    """Frame ``i`` is uniformly grey at level ``10 * i``, which survives scaling and lossy 4:2:0 coding."""
    levels = torch.arange(num_frames, dtype=torch.uint8) * 10
    frames = levels.view(-1, 1, 1, 1).expand(num_frames, 3, 32, 32).contiguous()
    write_video(
        path,
        frames,
        fps=fps,
        codec="libx264rgb",
        crf=0,
        pts_seconds=offset_pts(num_frames, fps=fps, begin_seconds=begin_seconds),
    )
    return path.name


def grey_levels(path: Path) -> list[int]:
    with VideoReader(path) as reader:
        return [
            round(level / 10) for level in reader.get_frames(0, len(reader)).data.float().mean(dim=(1, 2, 3)).tolist()
        ]


def test_prepared_copies_keep_frames_times_labels_and_keypoints(tmp_path: Path, write_manifest: WriteManifest) -> None:
    video = {
        "id": "v0",
        "split": "train",
        "views": {
            "front": grey_video(tmp_path / "front.mkv", 24, fps=30.0),
            "left": grey_video(tmp_path / "left.mkv", 12, fps=15.0, begin_seconds=0.5),
        },
        "timeline": {"unit": "seconds", "segments": [{"start": 0.2, "end": 0.5, "label": "adjust"}]},
        "keypoints": {
            "front": write_keypoints(tmp_path / "v0", "front", 24, "npz"),
            "left": write_keypoints(tmp_path / "v0", "left", 12, "npy"),
        },
    }
    source = write_manifest({"labels": ["idle", "front", "adjust"], "root": ".", "videos": [video]})
    prepared = prepare_manifest(source, size=(16, 32), gop=4, out_dir=tmp_path / "prepared", workers=2, crf=10)
    assert prepared == tmp_path / "prepared" / "manifest.yaml"
    original, manifest = load_manifest(source), load_manifest(prepared)
    assert manifest.root == (tmp_path / "prepared").resolve()
    entry = manifest.videos[0]
    assert (entry.timeline, entry.split, manifest.labels) == (original.videos[0].timeline, "train", original.labels)
    for view, path in entry.views.items():
        before, after = probe(original.videos[0].views[view]), probe(path)
        assert path == manifest.root / "videos" / "v0" / f"{view}.mp4"
        assert (after.num_frames, after.height, after.width, after.codec) == (before.num_frames, 16, 32, "h264")
        assert after.begin_seconds == pytest.approx(before.begin_seconds, abs=1e-3)
        assert grey_levels(path) == list(range(before.num_frames))
    assert entry.keypoints["left"].read_bytes() == original.videos[0].keypoints["left"].read_bytes()
    assert len(list(entry.keypoints["front"].iterdir())) == 24
    index = build_chunk_index(manifest)
    assert index.videos["v0"].keypoints["front"].suffix == "_sam3d_body.npz"
    sample = VideoDataset(VideoDatasetConfig(manifest=prepared, mode="chunk", load_kpt=True))[0]
    assert sample["video"].shape == (2, 3, 24, 16, 32)
    assert sample["frame_labels"].tolist() == [-1] * 6 + [2] * 9 + [-1] * 9
    np.testing.assert_array_equal(sample["keypoints"][1, :, 0, 0].numpy(), np.arange(24) // 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": (15, 24), "gop": 4}, r"size=\(15, 24\) must be \(height, width\) of even integers"),
        ({"size": (16, 24, 3), "gop": 4}, r"size=\(16, 24, 3\) must be \(height, width\)"),
        ({"size": (16, 24), "gop": 0}, r"gop=0 must be >= 1"),
        ({"size": (16, 24), "gop": 4, "workers": 0}, r"workers=0 must be >= 1"),
        ({"size": (16, 24), "gop": 4, "crf": 52}, r"crf=52 must be in \[0, 51\]"),
    ],
)
def test_bad_prepare_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_manifest(tmp_path / "m.yaml", out_dir=tmp_path / "out", **kwargs)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--size", "15", "16"], "error: size=(15, 16) must be (height, width) of even integers >= 2"),
        (["--size", "16", "16", "--workers", "0"], "error: workers=0 must be >= 1"),
    ],
)
def test_cli_reports_bad_arguments_without_a_traceback(
    make_dataset: MakeDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    source = make_dataset(num_frames=(4,))
    assert main(["prepare", str(source), "--out", str(tmp_path / "out"), *arguments]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_the_whole_manifest_is_checked_before_transcoding(make_dataset: MakeDataset, tmp_path: Path) -> None:
    segments = [{"start": 0, "end": 4, "label": "sneeze"}]
    source = make_dataset(
        num_frames=(4, 4, 4),
        timelines={1: {"unit": "frames", "segments": segments}},
        extra={0: {"keypoints": {"front": "v0/kpt_front"}}},
    )
    (tmp_path / "v0" / "kpt_front").mkdir()
    (tmp_path / "v2" / "front.mkv").write_bytes(b"not a video")
    with pytest.raises(ManifestError) as caught:
        prepare_manifest(source, size=(16, 16), gop=4, out_dir=tmp_path / "out", progress=False)
    assert [(p.video_id, p.field) for p in caught.value.problems] == [
        ("v0", "keypoints.front"),
        ("v1", "timeline.segments[0]"),
        ("v2", "views.front"),
    ]
    assert not (tmp_path / "out").exists()


def test_outputs_outside_out_dir_are_refused(tmp_path: Path) -> None:
    # Manifests refuse such ids; this guards entries built in code.
    entry = VideoEntry(id="../../escaped", views={"front": tmp_path / "a.mp4"})
    with pytest.raises(ValueError, match=r"video '../../escaped': .*/front.mp4: resolves to .*, outside the output"):
        _relocate(entry, tmp_path / "out")


def test_failed_transcode_names_the_file(make_dataset: MakeDataset, tmp_path: Path) -> None:
    source = make_dataset(num_frames=(6,))
    (tmp_path / "out" / "videos").mkdir(parents=True)
    (tmp_path / "out" / "videos" / "v0").write_bytes(b"a file where the video's folder should be")
    with pytest.raises(TranscodeError, match=r"front.mkv: transcoding to .*front\.mp4 failed: "):
        prepare_manifest(source, size=(16, 16), gop=4, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "manifest.yaml").exists()


def test_a_link_inside_out_dir_that_leads_outside_is_refused(make_dataset: MakeDataset, tmp_path: Path) -> None:
    source = make_dataset(num_frames=(4,))
    elsewhere, out = tmp_path / "elsewhere", tmp_path / "out"
    elsewhere.mkdir()
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "v0").symlink_to(elsewhere)
    with pytest.raises(ValueError, match=r"video 'v0': .*out/videos/v0/front\.mp4: resolves to .*elsewhere/front\.mp4"):
        prepare_manifest(source, size=(16, 16), gop=4, out_dir=out, progress=False)
    assert list(elsewhere.iterdir()) == []


def test_a_manifest_without_videos_is_an_error(write_manifest: WriteManifest, tmp_path: Path) -> None:
    source = write_manifest({"labels": ["idle"], "root": ".", "videos": []})
    with pytest.raises(ManifestError, match=r"manifest\.yaml: videos: is empty: there is nothing to prepare"):
        prepare_manifest(source, size=(16, 16), gop=4, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_progress_moves_as_each_video_finishes(
    make_dataset: MakeDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two views per video: the bar counts videos, and moves when a video's last view is done, not at the end.
    source = make_dataset(num_frames=(8, 8, 8), views={"front": {}, "left": {}})
    out = tmp_path / "out"
    finished_at_each_advance: list[int] = []
    real_advance = Progress.advance

    def advance(self: Progress, task: TaskID, amount: float = 1) -> None:
        finished_at_each_advance.append(len(list((out / "videos").glob("*/*.mp4"))))
        real_advance(self, task, amount)

    monkeypatch.setattr(Progress, "advance", advance)
    prepare_manifest(source, size=(16, 16), gop=4, out_dir=out, workers=1, progress=True)
    assert len(finished_at_each_advance) == 3
    assert finished_at_each_advance[0] < 6


_PREPARE_SCRIPT = """
import sys
from vidfit.data import prepare_manifest

prepare_manifest(sys.argv[1], size=(192, 192), gop=2, out_dir=sys.argv[2], workers=2, crf=0, progress=False)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_stops_prepare_promptly_and_leaves_no_partial_file(
    make_dataset: MakeDataset, tmp_path: Path, signum: int
) -> None:
    source = make_dataset(num_frames=(120,) * 6)
    out = tmp_path / "out"
    process = psutil.Popen([sys.executable, "-c", _PREPARE_SCRIPT, str(source), str(out)], stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: any((out / "videos").glob("*/.*tmp*")), process)  # a transcode is under way
        workers = process.children(recursive=True)
        process.send_signal(signum)
        started = time.monotonic()
        process.wait(timeout=30)
        stop_seconds = time.monotonic() - started
    finally:
        if process.is_running():
            process.kill()
    assert stop_seconds < 10, f"took {stop_seconds:.1f} s to stop"
    assert process.returncode != 0
    # The forkserver and the resource tracker end when they see the main process gone. A process that
    # ended but that no one reaped yet (its parent gone, a container's init that does not reap) is a zombie.
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert workers and not [w.pid for w in alive if _still_running(w)]
    assert not (out / "manifest.yaml").exists()
    assert not [p.name for p in out.rglob(".*")], "temp files left behind"
    finished = list(out.rglob("*.mp4"))
    assert len(finished) < 6, "the queued videos were transcoded anyway"
    for path in finished:  # a file under its final name is whole
        assert probe(path).num_frames == 120


def _still_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(condition: Callable[[], bool], process: psutil.Popen) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "prepare never started transcoding"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda path: None, r"manifest\.yaml: no such manifest file"),
        (lambda path: path.mkdir(), r"manifest\.yaml: is a folder, not a manifest file"),
        (lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), r"manifest\.yaml: not a YAML manifest: byte 0"),
    ],
)
def test_a_manifest_that_cannot_be_read_is_named(tmp_path: Path, make: Callable[[Path], object], match: str) -> None:
    source = tmp_path / "manifest.yaml"
    make(source)
    with pytest.raises((OSError, ValueError), match=match):
        prepare_manifest(source, size=(16, 16), gop=4, out_dir=tmp_path / "out", progress=False)


def test_a_folder_given_as_a_video_is_named_as_such(make_dataset: MakeDataset, tmp_path: Path) -> None:
    source = make_dataset(num_frames=(4, 4))
    (tmp_path / "v1" / "front.mkv").unlink()
    (tmp_path / "v1" / "front.mkv").mkdir()
    with pytest.raises(ManifestError, match=r"video 'v1': .*front\.mkv: views\.front: is a folder, not a video file"):
        prepare_manifest(source, size=(16, 16), gop=4, out_dir=tmp_path / "out", progress=False)


def levels_in_clip(path: Path, start_seconds: float, end_seconds: float) -> list[int]:
    """The grey levels of a clip's frames by a local decode of the original: frames whose time lies inside."""
    with VideoReader(path) as reader:
        times = (reader.pts_seconds - reader.pts_seconds[0]).tolist()
    return [level for level, t in zip(grey_levels(path), times, strict=True) if start_seconds <= t < end_seconds]


@pytest.mark.slow
def test_prepare_cuts_clip_ranges_with_their_timelines_and_keypoints(
    tmp_path: Path, write_manifest: WriteManifest
) -> None:
    segments = [
        {"start": 0, "end": 12, "label": "front"},
        {"start": 10, "end": 22, "label": "adjust"},
        {"start": 22, "end": 24, "label": "idle"},
    ]
    both = {
        "id": "both",
        "split": "train",
        "views": {
            "front": grey_video(tmp_path / "front.mkv", 24, fps=30.0),
            "left": grey_video(tmp_path / "left.mkv", 12, fps=15.0, begin_seconds=0.5),
        },
        "timeline": {"unit": "frames", "segments": segments},
        "keypoints": {
            "front": write_keypoints(tmp_path / "both", "front", 24, "npz"),
            "left": write_keypoints(tmp_path / "both", "left", 12, "npy"),
        },
        "start": 0.3,
        "end": 0.7,
    }
    seconds = {
        "id": "seconds",
        "views": {"front": "front.mkv"},
        "timeline": {"unit": "seconds", "segments": [{"start": 0.5, "end": 0.75, "label": "idle"}]},
        "start": 0.3,
        "end": 0.7,
    }
    labels = ["idle", "front", "adjust"]
    source = write_manifest({"labels": labels, "root": ".", "multi_label": True, "videos": [both, seconds]})
    prepared = load_manifest(prepare_manifest(source, size=(16, 16), gop=4, out_dir=tmp_path / "out"))
    assert prepared.multi_label
    entry, other = prepared.videos
    assert (entry.start_seconds, entry.end_seconds) == (None, None)
    assert grey_levels(entry.views["front"]) == levels_in_clip(tmp_path / "front.mkv", 0.3, 0.7) == list(range(9, 21))
    assert grey_levels(entry.views["left"]) == levels_in_clip(tmp_path / "left.mkv", 0.3, 0.7) == list(range(5, 11))
    for view, original in (("front", 0.0), ("left", 0.5)):
        assert probe(entry.views[view]).begin_seconds == pytest.approx(original, abs=1e-3)
    assert [(s.start, s.end, s.label) for s in entry.timeline.segments] == [(0, 3, "front"), (1, 12, "adjust")]
    assert [(s.start, s.end) for s in other.timeline.segments] == [(pytest.approx(0.2), pytest.approx(0.4))]
    assert np.load(entry.keypoints["left"])[:, 0, 0].tolist() == list(range(5, 11))
    config = VideoDatasetConfig(
        manifest=tmp_path / "out" / "manifest.yaml", split="train", mode="chunk", load_kpt=True, multi_label=True
    )
    sample = VideoDataset(config)[0]
    assert sample["keypoints"][0, :, 0, 0].tolist() == list(range(9, 21))
    assert sample["frame_labels"][:4].tolist() == [[0, 1, 0], [0, 1, 1], [0, 1, 1], [0, 0, 1]]
