"""Multi-label action recognition: overlapping segments in, sigmoid heads trained, overlapping classes out."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import tiny_overrides
from vidfit.apps import predict
from vidfit.apps._report_data import read_predictions
from vidfit.cli import main
from vidfit.config import ConfigError, load_config
from vidfit.data import Segment, Timeline, VideoBatch, load_manifest, save_manifest
from vidfit.infer import TimedSegment, VideoPrediction
from vidfit.io import write_video
from vidfit.tasks.action._multilabel import class_thresholds, multi_label_counts, multi_label_loss
from vidfit.tasks.action._multilabel_output import write_multi_label_results
from vidfit.tasks.action._multilabel_scores import MultiLabelScore, class_segments, multi_label_metrics
from vidfit.train import fit

LABELS = ["red", "green"]
NUM_FRAMES = 24
# Per video: the frames [start, stop) of red and of green, overlapping in most videos.
SPANS = [((0, 14), (8, 24)), ((4, 20), (0, 10)), ((10, 24), (2, 16)), ((0, 8), (12, 24)), ((2, 18), (6, 22)),
         ((12, 24), (0, 16))]  # fmt: skip


def write_colour_video(path: Path, red: tuple[int, int], green: tuple[int, int]) -> None:
    """A grey video whose red channel lights up while red is on and green channel while green is on."""
    frames = torch.full((NUM_FRAMES, 3, 32, 32), 40, dtype=torch.uint8)
    frames[red[0] : red[1], 0] = 220
    frames[green[0] : green[1], 1] = 220
    write_video(path, frames, fps=10.0, codec="libx264rgb", crf=0, gop=4)


def write_multi_label_manifest(root: Path, *, multi_label: bool = True) -> Path:
    """Six videos (four train, two val) of overlapping red and green segments, in frames."""
    videos = []
    for index, (red, green) in enumerate(SPANS):
        write_colour_video(root / f"v{index}.mkv", red, green)
        segments = [
            {"start": red[0], "end": red[1], "label": "red"},
            {"start": green[0], "end": green[1], "label": "green"},
        ]
        split = "val" if index >= 4 else "train"
        videos.append({"id": f"v{index}", "split": split, "views": {"front": f"v{index}.mkv"},
                       "timeline": {"unit": "frames", "segments": segments}})  # fmt: skip
    document = {"labels": LABELS, "root": ".", "videos": videos}
    if multi_label:
        document["multi_label"] = True
    path = root / "manifest.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def multi_label_overrides(manifest: Path, output: Path, *extra: str) -> list[str]:
    return tiny_overrides(
        manifest, output, "model.multi_label=true", "data.num_frames=8", "data.max_video_frames=8",
        "data.batch_size=4", "train.lr=0.03", "train.scheduler=none", "trainer.max_steps=24", "trainer.max_epochs=8",
        "trainer.check_val_every_n_epoch=8", *extra,
    )  # fmt: skip


@pytest.mark.slow
def test_a_tiny_multi_label_run_learns_and_predicts_overlapping_classes(tmp_path: Path) -> None:
    manifest = write_multi_label_manifest(tmp_path)
    result = fit(load_config(None, multi_label_overrides(manifest, tmp_path / "runs")))
    assert result.metrics["val/frame_map"] > 0.9 and result.metrics["val/video_map"] == 1.0
    assert {"val/frame_f1", "val/mAP", "val/f1@0.5", "train/frame_f1"} <= set(result.metrics)
    assert "val/acc" not in result.metrics and "train/acc" not in result.metrics
    assert result.last_checkpoint is not None
    found = predict(result.last_checkpoint, [manifest], out=tmp_path / "p.json", split="val", progress=False)
    assert found.metrics is not None and found.frame_accuracy is None
    assert any(line.startswith("frame mAP") for line in found.report_lines())
    rows = {(row["video_id"], int(row["frame"])): row for row in csv.DictReader(found.csv_path.open())}
    assert len(rows) == 2 * NUM_FRAMES
    # v4: red [2, 18), green [6, 22); v5: red [12, 24), green [0, 16). Frames well inside a span, or outside both.
    assert all(rows["v4", frame]["labels"] == "red;green" for frame in range(8, 16))
    assert all(rows["v4", frame]["labels"] == "green" for frame in (20, 21))
    assert all(rows["v5", frame]["labels"] == "green" for frame in range(2, 9))
    assert all(rows["v5", frame]["labels"] == "red;green" for frame in (13, 14))
    assert all(rows["v5", frame]["labels"] == "red" for frame in range(19, 24))
    assert 0 <= float(rows["v5", 0]["score:red"]) < 0.5 < float(rows["v5", 0]["score:green"]) <= 1
    document = json.loads(found.json_path.read_text())
    segments = {item["label"]: item["frames"] for item in document["results"]["v4"]}
    assert set(segments) == {"red", "green"} and segments["green"][0] < segments["red"][1]  # they overlap
    assert document["vidfit"]["v4"]["labels"] == LABELS and document["vidfit"]["v4"]["frames"] == [0, NUM_FRAMES]


@pytest.mark.parametrize(("multi_label", "set_model"), [(True, False), (False, True)])
def test_a_model_and_a_manifest_that_disagree_are_one_error_before_any_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], multi_label: bool, set_model: bool
) -> None:
    manifest = write_multi_label_manifest(tmp_path, multi_label=multi_label)
    extra = ["model.multi_label=true"] if set_model else []
    overrides = tiny_overrides(manifest, tmp_path / "runs", *extra)
    match = "the manifest says multi_label: true" if multi_label else "model.multi_label: true needs a manifest"
    with pytest.raises(ConfigError, match=match):
        fit(load_config(None, overrides))
    config = tmp_path / "fit.yaml"
    config.write_text("experiment: {}\n", encoding="utf-8")
    assert main(["fit", "--config", str(config), *[arg for item in overrides for arg in ("--set", item)]]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and "manifest.yaml" in errors[0]
    assert not (tmp_path / "runs").exists()


def test_multi_label_config_rules_name_their_keys(tmp_path: Path) -> None:
    manifest = write_multi_label_manifest(tmp_path)
    cases = [
        (["model.thresholds=1.0"], r"model.thresholds=1.0 must be a probability in \(0, 1\)"),
        (["train.monitor=val/acc"], r"train.monitor='val/acc' is a single-label figure; .* 'val/frame_map'"),
        (["train.chunk_aggregation=prob"], r"train.chunk_aggregation='prob' averages softmax probabilities"),
    ]
    for extra, match in cases:
        with pytest.raises(ConfigError, match=match):
            load_config(None, multi_label_overrides(manifest, tmp_path, *extra))
    with pytest.raises(ConfigError, match=r"train.monitor='val/frame_map' needs model.multi_label: true"):
        load_config(None, tiny_overrides(manifest, tmp_path, "train.monitor=val/frame_map"))
    config = load_config(None, multi_label_overrides(manifest, tmp_path / "runs", "model.thresholds=[0.5, 0.4, 0.2]"))
    with pytest.raises(ConfigError, match=r"model.thresholds lists 3 values but the model has 2 classes \(red, gr"):
        fit(config)
    assert not (tmp_path / "runs").exists()
    assert class_thresholds(0.3, LABELS).tolist() == pytest.approx([0.3, 0.3])


def test_the_loss_averages_binary_cross_entropy_over_known_entries_and_splits_exactly() -> None:
    label = torch.tensor([[1, 0], [-1, -1]], dtype=torch.int8)
    frames = torch.tensor([[[1, 1], [0, 0], [-1, -1]], [[0, 1], [1, 0], [0, 0]]], dtype=torch.int8)
    batch = VideoBatch(label=label, frame_labels=frames)
    logits, frame_logits = torch.tensor([[2.0, -1.0], [5.0, 5.0]]), torch.randn(2, 3, 2)
    counts = multi_label_counts(batch)
    assert (int(counts[0]), int(counts[1])) == (2, 10)
    loss = multi_label_loss(logits, frame_logits, batch, counts=counts, frame_loss_weight=0.5, label_smoothing=0.0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    known = frames != -1
    expected = bce(logits[0], label[0].float()) + 0.5 * bce(frame_logits[known], frames[known].float())
    torch.testing.assert_close(loss, expected)
    parts = [VideoBatch(label=label[i : i + 1], frame_labels=frames[i : i + 1]) for i in range(2)]
    summed = sum(
        multi_label_loss(logits[i : i + 1], frame_logits[i : i + 1], part, counts=counts, frame_loss_weight=0.5,
                         label_smoothing=0.0)
        for i, part in enumerate(parts)
    )  # fmt: skip
    torch.testing.assert_close(summed, loss)
    smooth = multi_label_loss(logits, frame_logits, batch, counts=counts, frame_loss_weight=0.0, label_smoothing=0.2)
    torch.testing.assert_close(smooth, bce(logits[0], torch.tensor([0.9, 0.1])))


def test_classes_become_overlapping_segments_at_their_own_thresholds() -> None:
    probabilities = torch.tensor([[0.9, 0.2], [0.8, 0.6], [0.7, 0.7], [0.1, 0.45]])
    pts = torch.arange(4, dtype=torch.float64) / 10
    at_half = class_segments(probabilities, pts_seconds=pts, thresholds=torch.tensor([0.5, 0.5]), first_frame=10)
    assert [(s.label, s.start_frame, s.stop_frame) for s in at_half] == [(0, 10, 13), (1, 11, 13)]
    assert at_half[1].score == pytest.approx(0.65)
    per_class = class_segments(probabilities, pts_seconds=pts, thresholds=torch.tensor([0.75, 0.4]))
    assert [(s.label, s.start_frame, s.stop_frame) for s in per_class] == [(0, 0, 2), (1, 1, 4)]


def test_metrics_of_perfect_and_of_wrong_predictions() -> None:
    truth = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.int8)
    segment = TimedSegment(0, 2, 0.0, 0.2, 0, 1.0)

    def score(frames: torch.Tensor) -> MultiLabelScore:
        video = torch.tensor([1, 1, 0], dtype=torch.int8)
        return MultiLabelScore("v", frames.amax(dim=0), video, frames, truth, (segment,), (segment,))

    thresholds = torch.full((3,), 0.5)
    perfect = multi_label_metrics([score(truth.float())], thresholds=thresholds)
    assert (perfect.frame_map, perfect.frame_f1, perfect.video_map, perfect.segment_f1) == (1.0, 1.0, 1.0, 1.0)
    assert perfect.num_labelled_frames == 3 and perfect.detection is not None
    # Class 0 never predicted (F1 0), class 1 on one of its two frames and one other (F1 0.5), class 2 never present.
    shifted = multi_label_metrics([score(truth.roll(1, dims=1).float())], thresholds=thresholds)
    assert shifted.frame_f1 == pytest.approx(0.25) and shifted.frame_map is not None and shifted.frame_map < 1.0
    assert perfect.logged("val")["val/frame_map"] == 1.0 and "val/top1" not in perfect.logged("val")


@dataclasses.dataclass(frozen=True)
class _Video:
    video_id: str
    timeline: Timeline | None
    label: str | None = None


def test_the_results_keep_each_videos_true_segments_for_the_report(tmp_path: Path) -> None:
    # Red on frames [0, 6), green on [2, 8) of 8; predicted: red [0, 6), green [3, 8) (tIoU 5/6): frame 2 misses green.
    probabilities = torch.zeros(8, 2)
    probabilities[:6, 0], probabilities[3:, 1] = 0.9, 0.8
    prediction = VideoPrediction(
        scores=torch.tensor([2.0, 2.0]), label=0, windows=[], window_logits=torch.zeros(1, 2),
        frame_logits=torch.logit(probabilities.clamp(0.01, 0.99)), pts_seconds=torch.arange(8.0) / 10,
        chunk_aggregation="mean", chunk_overlap=0, precision="32", used_chunk_infer_size=-1,
        used_video_batch_size=1, oom_retries=0,
    )  # fmt: skip
    timeline = Timeline("frames", (Segment(0, 6, "red"), Segment(2, 8, "green")))
    videos = [_Video("v", timeline), _Video("u", None, label="green")]
    paths = (tmp_path / "p.json", tmp_path / "p.csv")
    write_multi_label_results({"v": prediction, "u": prediction}, videos=videos, paths=paths, label_names=LABELS,
                              thresholds=torch.tensor([0.5, 0.5]), per_frame=True)  # fmt: skip
    found = {video.video_id: video for video in read_predictions(paths[0]).videos}
    assert sorted(found["v"].true) == [(0, 6, 0, 1.0), (2, 8, 1, 1.0)] and found["v"].label == (0, 1)
    assert (found["v"].labelled_frames, found["v"].correct_frames, found["v"].segment_f1) == (8, 7, 1.0)
    assert found["u"].true == [] and found["u"].label == (1,) and found["u"].labelled_frames == 0


def test_a_single_label_model_refuses_a_manifest_whose_segments_overlap(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(tiny_manifest)
    first, second = manifest.labels[:2]
    overlapping = Timeline("frames", (Segment(0, 10, first), Segment(4, 16, second)))
    videos = (dataclasses.replace(manifest.videos[0], timeline=overlapping), *manifest.videos[1:])
    multi = save_manifest(
        dataclasses.replace(manifest, videos=videos, multi_label=True), tiny_manifest.parent / "multi.yaml"
    )
    with pytest.raises(ConfigError, match=r"\[0, 10\) and \[4, 16\) overlap .*a single-label model"):
        predict(tiny_checkpoint, [multi], out=tmp_path / "p.json", progress=False)
    assert not (tmp_path / "p.json").exists()
