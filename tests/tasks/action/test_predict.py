"""`vidfit predict`: manifests, files and folders through a checkpoint, keypoints, failures per video."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_overrides
from vidfit.apps import predict
from vidfit.cli import main
from vidfit.config import ConfigError, load_config
from vidfit.data import Segment, Timeline, load_manifest, save_manifest
from vidfit.infer import EvaluationMetrics, VideoPrediction
from vidfit.infer._windows import Window
from vidfit.io import VideoReader, write_video
from vidfit.tasks.action import _predict as predict_module
from vidfit.train import fit


def test_manifest_videos_are_predicted_and_scored_against_their_timelines(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    result = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "out" / "p.json", progress=False)
    ids = [entry.id for entry in load_manifest(tiny_manifest).videos]
    assert sorted(result.predictions) == ids and result.failures == {}
    document = json.loads(result.json_path.read_text())
    assert sorted(document["results"]) == ids
    assert {"label", "scores", "chunk_infer_size", "chunk_overlap", "precision", "num_windows"} <= set(
        document["vidfit"]["vid_000"]
    )
    rows = list(csv.DictReader(result.csv_path.open()))
    assert result.csv_path == tmp_path / "out" / "p.csv"
    assert len(rows) == 16 * len(ids) and rows[0]["video_id"] == "vid_000"
    assert result.frame_accuracy is not None and 0.0 <= result.frame_accuracy <= 1.0
    assert result.segment_f1 is not None and 0.0 <= result.segment_f1 <= 1.0


def test_split_and_overrides_select_videos_and_windows(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    val = [entry.id for entry in load_manifest(tiny_manifest).videos if entry.split == "val"]
    overrides = ["train.chunk_infer_size=8", "train.chunk_overlap=4"]
    result = predict(
        tiny_checkpoint, [tiny_manifest], out=tmp_path / "p.json", split="val", overrides=overrides, progress=False
    )
    assert sorted(result.predictions) == val
    assert all(len(p.windows) == 3 and len(p.frame_logits) == 16 for p in result.predictions.values())
    with pytest.raises(ConfigError, match=r"train\.chunk_infer_sise"):
        predict(tiny_checkpoint, [tiny_manifest], overrides=["train.chunk_infer_sise=8"], progress=False)


def test_an_unreadable_video_fails_alone(tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_manifest.parent, tmp_path / "data")
    manifest = load_manifest(copy / tiny_manifest.name)
    garbage = copy / "vid_000" / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    broken = dataclasses.replace(manifest.videos[0], views={**manifest.videos[0].views, "left": garbage})
    path = save_manifest(dataclasses.replace(manifest, videos=(broken, *manifest.videos[1:])), copy / "m.yaml")
    result = predict(tiny_checkpoint, [path], out=tmp_path / "p.json", progress=False)
    assert list(result.failures) == ["vid_000"] and "garbage.mp4" in result.failures["vid_000"]
    assert len(result.predictions) == len(manifest.videos) - 1


def test_a_multi_view_model_refuses_single_files_with_exit_code_1(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = load_manifest(tiny_manifest).videos[0].views["front"]
    code = main(["predict", str(video), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "p.json")])
    assert code == 1
    assert "give a manifest that names each view's file" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []  # nothing could be predicted: nothing is written


def test_a_single_view_model_predicts_files_and_folders(tiny_manifest: Path, tmp_path: Path) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path / "runs", "data.views=[front]"))
    checkpoint = fit(config).last_checkpoint
    assert checkpoint is not None
    first = load_manifest(tiny_manifest).videos[0].views["front"]
    result = predict(checkpoint, [first.parent, first], out=tmp_path / "p.json", progress=False)
    assert sorted(result.predictions) == sorted(["front", "left", str(first)])
    assert result.frame_accuracy is None and result.failures == {}
    second = load_manifest(tiny_manifest).videos[1].views["front"]
    with pytest.raises(ConfigError, match=re.escape(f"video id 'front' is given twice, by {first} and {second}:")):
        predict(checkpoint, [first.parent, second.parent], out=tmp_path / "q.json", progress=False)
    assert not (tmp_path / "q.json").exists()


def test_a_keypoint_model_reads_each_videos_keypoints(tiny_manifest: Path, tmp_path: Path) -> None:
    extra = ("model.input_type=rgb_kpt", "model.num_keypoints=5", "model.keypoint_dims=2", "data.load_kpt=true")
    checkpoint = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path / "runs", *extra))).last_checkpoint
    assert checkpoint is not None
    with_keypoints = predict(checkpoint, [tiny_manifest], out=tmp_path / "a.json", split="val", progress=False)
    assert with_keypoints.failures == {} and len(with_keypoints.predictions) == 4
    without = predict(checkpoint, [tiny_manifest.parent / "manifest.yaml"], out=tmp_path / "b.json", progress=False)
    assert not without.predictions
    assert all("model.input_type='rgb_kpt'" in reason for reason in without.failures.values())


def test_two_videos_of_one_id_are_refused_before_any_work(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    code = main(
        ["predict", str(tiny_manifest), str(tiny_manifest), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    )
    front = load_manifest(tiny_manifest).videos[0].views["front"]
    assert code == 2 and f"error: video id 'vid_000' is given twice, by {front} and {front}" in capsys.readouterr().err
    assert not out.exists()


def _edited_manifest(manifest: Path, folder: Path, edits: dict[str, Callable[[Path], dict[str, Path]]]) -> Path:
    """A copy of the manifest and its videos in `folder`, each edited video's views replaced by ``edit(its folder)``."""
    copy = load_manifest(shutil.copytree(manifest.parent, folder) / manifest.name)
    videos = tuple(
        dataclasses.replace(v, views={**v.views, **edits[v.id](folder / v.id)}) if v.id in edits else v
        for v in copy.videos
    )
    return save_manifest(dataclasses.replace(copy, videos=videos), folder / "edited.yaml")


def _rewritten(
    source: Path, target: Path, *, edit: Callable[[torch.Tensor], torch.Tensor] = lambda f: f, start: float = 0.0
) -> Path:
    """`source`'s decoded frames, edited, losslessly re-encoded from `start` seconds (decoding gives them back)."""
    with VideoReader(source) as reader:
        frames, fps = edit(reader.get_frames(0, len(reader)).data), reader.metadata.fps
    pts = start + torch.arange(len(frames), dtype=torch.float64) / fps
    return write_video(target, frames.contiguous(), fps=fps, codec="libx264rgb", crf=0, pts_seconds=pts)


def test_views_are_matched_by_time_and_a_video_that_fails_fails_alone(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [v.id for v in load_manifest(tiny_manifest).videos if v.split == "val"]
    edits = {
        # One frame more than the reference: 67 ms, within sync_tolerance_seconds=0.1, as training accepts.
        ids[0]: lambda d: {"left": _rewritten(d / "left.mp4", d / "left17.mkv", edit=lambda f: torch.cat([f, f[-1:]]))},
        ids[1]: lambda d: {"left": _rewritten(d / "left.mp4", d / "big.mkv", edit=_upsized)},
        ids[2]: lambda d: {"left": _rewritten(d / "left.mp4", d / "short.mkv", edit=lambda f: f[:12])},  # 0.27 s short
    }
    manifest = _edited_manifest(tiny_manifest, tmp_path / "data", edits)
    out = tmp_path / "out" / "p.json"
    code = main(["predict", str(manifest), "--split", "val", "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    assert code == 1
    errors = capsys.readouterr().err
    assert f"failed: {ids[1]}: ValueError: views differ in size: " in errors and "big.mkv (48x48)" in errors
    assert f"failed: {ids[2]}: ValueError: video {ids[2]!r}: " in errors and "sync_tolerance_seconds=0.1" in errors
    document = json.loads(out.read_text())
    assert sorted(document["results"]) == sorted(set(ids) - {ids[1], ids[2]})
    assert len(list(csv.DictReader(out.with_suffix(".csv").open()))) == 16 * (len(ids) - 2)
    original = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "original.json", split="val", progress=False)
    written, expected = document["vidfit"][ids[0]]["scores"], original.predictions[ids[0]].scores.tolist()
    assert written == dict(zip(written, expected, strict=True))  # the extra frame is never matched: same input


def test_a_run_that_predicts_nothing_leaves_the_earlier_results_as_they_were(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "p.json"
    good = predict(tiny_checkpoint, [tiny_manifest], out=out, split="val", progress=False)
    assert len(good.predictions) == 4 and good.written
    before = {path.name: path.read_bytes() for path in out.parent.iterdir()}
    # Every video's second view unreadable (a mount gone, a bad copy): every video fails.
    ids = [v.id for v in load_manifest(tiny_manifest).videos]

    def garbage(folder: Path) -> dict[str, Path]:
        (folder / "garbage.mp4").write_bytes(b"not a video" * 100)
        return {"left": folder / "garbage.mp4"}

    broken = _edited_manifest(tiny_manifest, tmp_path / "data", dict.fromkeys(ids, garbage))
    arguments = ["predict", str(broken), "--split", "val", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    assert main(arguments) == 1
    assert {path.name: path.read_bytes() for path in out.parent.iterdir()} == before  # no temp file either
    captured = capsys.readouterr()
    assert f"no video could be predicted: {out} and {out.with_suffix('.csv')} not written" in captured.out
    assert captured.err.count("failed: ") == 4
    # A shard that predicts nothing writes no output and no record: `merge` asks for it to be run again.
    assert main([*arguments, "--shard", "0/2"]) == 1
    assert {path.name: path.read_bytes() for path in out.parent.iterdir()} == before


def _upsized(frames: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(frames.float(), size=(48, 48)).to(torch.uint8)


def test_times_count_from_the_first_frame(tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    first = load_manifest(tiny_manifest).videos[0].id
    late = {first: lambda d: {v: _rewritten(d / f"{v}.mp4", d / f"{v}_late.mkv", start=5.0) for v in ("front", "left")}}
    manifest = _edited_manifest(tiny_manifest, tmp_path / "data", late)
    result = predict(tiny_checkpoint, [manifest], out=tmp_path / "p.json", split="val", progress=False)
    with VideoReader(tmp_path / "data" / first / "front_late.mkv") as reader:
        assert reader.pts_seconds[0] == pytest.approx(5.0)
    rows = [r for r in csv.DictReader(result.csv_path.open()) if r["video_id"] == first]
    assert [float(r["pts_seconds"]) for r in rows] == pytest.approx([i / 15 for i in range(16)], abs=1e-3)
    segments = json.loads(result.json_path.read_text())["results"][first]
    assert segments[0]["segment"][0] == 0.0 and segments[-1]["segment"][1] == pytest.approx(16 / 15, abs=1e-3)


def test_any_error_fails_its_video_alone_and_ctrl_c_still_stops(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    val = [v.id for v in load_manifest(tiny_manifest).videos if v.split == "val"]
    real = predict_module._predict_job

    def out_of_memory_on_the_first(predictor: object, *, job: predict_module._Job, **kwargs: object) -> object:
        if job.video_id == val[0]:
            raise torch.OutOfMemoryError("CUDA out of memory even at video_batch_size=1 (injected)")
        return real(predictor, job=job, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(predict_module, "_predict_job", out_of_memory_on_the_first)
    result = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "p.json", split="val", progress=False)
    assert result.failures == {val[0]: "OutOfMemoryError: CUDA out of memory even at video_batch_size=1 (injected)"}
    assert (
        list(result.predictions) == val[1:] and sorted(json.loads(result.json_path.read_text())["results"]) == val[1:]
    )

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_module, "_predict_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "q.json", split="val", progress=False)


def _prediction(frame_labels: list[int], fps: float) -> VideoPrediction:
    """A prediction of two classes whose frames are labelled `frame_labels`."""
    logits = torch.nn.functional.one_hot(torch.tensor(frame_labels), 2).float() * 4
    count = len(frame_labels)
    return VideoPrediction(
        scores=logits.mean(0), label=int(logits.mean(0).argmax()), windows=[Window(0, count)],
        window_logits=logits.mean(0, keepdim=True), frame_logits=logits,
        pts_seconds=torch.arange(count, dtype=torch.float64) / fps, chunk_aggregation="mean", chunk_overlap=0,
        precision="32", used_chunk_infer_size=-1, used_video_batch_size=1, oom_retries=0,
    )  # fmt: skip


def test_figures_by_hand_from_timelines_in_seconds_and_frames(tmp_path: Path) -> None:
    labels = ("a", "b")
    jobs = [
        # Truth a a | b b b b (seconds at 1 fps), predicted a a a | b b b: 5 of 6 frames right; both
        # predicted segments overlap their true one by IoU 2/3 and 3/4 >= 0.5: F1 1. Its video label b: wrong.
        predict_module._Job("v1", {}, Timeline("seconds", (Segment(0, 2, "a"), Segment(2, 6, "b"))), label="b"),
        # Truth a | b b | unlabelled (frames), predicted b b b b: 2 of 3 labelled frames right; the one
        # predicted segment [0, 4) matches the true b [1, 3) at IoU 2/4 = 0.5, not a [0, 1): F1 2/(1 + 2).
        predict_module._Job("v2", {}, Timeline("frames", (Segment(0, 1, "a"), Segment(1, 3, "b"))), label="b"),
        # A timeline that labels none of the video's frames has nothing to detect: left out, not scored 0.
        predict_module._Job("v3", {}, Timeline("seconds", (Segment(100, 200, "a"),))),
        predict_module._Job("v4", {}),  # no timeline, no label: not scored
    ]
    predictions = {
        "v1": _prediction([0, 0, 0, 1, 1, 1], fps=1.0),
        "v2": _prediction([1, 1, 1, 1], fps=10.0),
        "v3": _prediction([0, 1], fps=1.0),
        "v4": _prediction([0, 1], fps=1.0),
    }

    def figures(jobs: list[predict_module._Job]) -> EvaluationMetrics | None:
        paths = (tmp_path / "p.json", tmp_path / "p.csv")
        found = {job.video_id: predictions[job.video_id] for job in jobs}
        _, summary = predict_module._write_results([(found, {})], jobs=jobs, paths=paths, labels=labels, per_frame=True)
        assert summary.metrics is None or isinstance(summary.metrics, EvaluationMetrics)
        return summary.metrics

    metrics = figures(jobs)
    assert metrics is not None and metrics.frame_accuracy == pytest.approx((5 + 2) / (6 + 3))
    assert metrics.segment_f1 == pytest.approx((1.0 + 2 / 3) / 2)
    # At tIoU 0.3: a's one prediction finds one of its two true segments (AP 0.5), b's two find both (AP 1).
    assert metrics.detection is not None and metrics.detection.map_per_tiou[0] == pytest.approx((0.5 + 1.0) / 2)
    # v1's tied video scores go to a (wrong), v2's to b (right): top-1 over the two labelled videos.
    assert (metrics.num_videos, metrics.num_labelled_videos, metrics.top1) == (3, 2, 0.5)
    nothing = figures(jobs[2:])
    assert nothing is not None and nothing.report_lines() == [] and nothing.frame_accuracy is None


def test_the_output_place_is_checked_before_any_video_is_predicted(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(predict_module, "_predict_job", lambda *args, **kwargs: calls.append(kwargs))
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError, match=r"taken: is a folder"):
        predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "taken", progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"is not a folder"):
        predict(tiny_checkpoint, [tiny_manifest], out=blocker / "p.json", progress=False)
    assert calls == []


def test_json_and_csv_are_written_together_or_not_at_all(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "p.json"
    predict(tiny_checkpoint, [tiny_manifest], out=out, split="val", progress=False)
    before = (out.read_bytes(), out.with_suffix(".csv").read_bytes())
    real_write_text = Path.write_text

    def disk_full_on_the_csv(self: Path, *args: object, **kwargs: object) -> int:
        if self.suffix == ".csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", disk_full_on_the_csv)
    with pytest.raises(OSError, match=r"p\.csv: cannot write: no space left"):
        predict(tiny_checkpoint, [tiny_manifest], out=out, progress=False)  # all splits: a different JSON
    monkeypatch.undo()
    assert (out.read_bytes(), out.with_suffix(".csv").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.html", "p.json"]  # and the first run's report


def test_a_label_the_model_lacks_is_refused_before_any_work(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(tiny_manifest)
    first = dataclasses.replace(manifest.videos[0], label="swim")
    other = dataclasses.replace(manifest, labels=(*manifest.labels, "swim"), videos=(first, *manifest.videos[1:]))
    path = save_manifest(dataclasses.replace(other, root=tiny_manifest.parent), tmp_path / "other.yaml")
    with pytest.raises(
        ConfigError, match=r"video 'vid_000' is labelled \['swim'\], which are not classes of the model"
    ):
        predict(tiny_checkpoint, [path], out=tmp_path / "p.json", progress=False)
    assert not (tmp_path / "p.json").exists()
