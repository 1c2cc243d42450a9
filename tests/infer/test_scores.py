"""Per-video scoring records and the figures combined from them: video top-k, mean class accuracy, frames, mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidfit.infer import VideoPrediction, VideoScore, evaluation_metrics, metric_names, score_to_json, score_video
from vidfit.infer._results import write_predictions
from vidfit.infer._scores import FrameScore, scores_from_document
from vidfit.infer._windows import Window


def prediction(frame_labels: list[int], *, fps: float = 1.0, num_classes: int = 2) -> VideoPrediction:
    """A prediction whose frames are labelled `frame_labels` and whose video label is their most common one."""
    logits = torch.nn.functional.one_hot(torch.tensor(frame_labels), num_classes).float() * 4
    count = len(frame_labels)
    return VideoPrediction(
        scores=logits.mean(0), label=int(logits.mean(0).argmax()), windows=[Window(0, count)],
        window_logits=logits.mean(0, keepdim=True), frame_logits=logits,
        pts_seconds=torch.arange(count, dtype=torch.float64) / fps, chunk_aggregation="mean", chunk_overlap=0,
        precision="32", used_chunk_infer_size=-1, used_video_batch_size=1, oom_retries=0,
    )  # fmt: skip


def video(video_id: str, label: int, scores: list[float]) -> VideoScore:
    return VideoScore(video_id, label, tuple(scores), None)


def test_frames_and_segments_are_scored_by_hand() -> None:
    # Truth a a | b b b b, predicted a a a | b b b: 5 of 6 frames right; both predicted segments overlap their
    # true one by IoU 2/3 and 3/4 >= 0.5: F1 1.
    truth = torch.tensor([0, 0, 1, 1, 1, 1])
    one = score_video(prediction([0, 0, 0, 1, 1, 1]), video_id="v1", label=0, frame_labels=truth)
    assert one.frames is not None and (one.frames.num_labelled, one.frames.num_correct) == (6, 5)
    assert one.frames.segment_f1 == 1.0 and [s.label for s in one.frames.true] == [0, 1]
    # Truth a | b b | unlabelled, predicted b b b b: 2 of 3 labelled frames right; [0, 4) matches b [1, 3) at
    # IoU 2/4 = 0.5, not a [0, 1): F1 2/(1 + 2).
    two = score_video(prediction([1, 1, 1, 1], fps=10.0), video_id="v2", frame_labels=torch.tensor([0, 1, 1, -1]))
    assert two.frames is not None and (two.frames.num_labelled, two.frames.num_correct) == (3, 2)
    # No labelled frame (or no timeline): nothing to score per frame.
    assert score_video(prediction([0, 1]), video_id="v3", frame_labels=torch.tensor([-1, -1])).frames is None
    assert score_video(prediction([0, 1]), video_id="v4").frames is None
    metrics = evaluation_metrics([one, two], num_classes=2)
    assert metrics.frame_accuracy == pytest.approx((5 + 2) / (6 + 3)) and metrics.num_labelled_frames == 9
    assert metrics.segment_f1 == pytest.approx((1.0 + 2 / 3) / 2)
    # At tIoU 0.3: a's one prediction finds one of its two true segments (AP 0.5), b's two find both (AP 1).
    assert metrics.detection is not None and metrics.detection.map_per_tiou[0] == pytest.approx((0.5 + 1.0) / 2)
    # One labelled video: v1, whose tied scores go to the first class, a: right.
    assert (metrics.top1, metrics.mean_class_accuracy, metrics.num_labelled_videos) == (1.0, 1.0, 1)
    with pytest.raises(ValueError, match=r"frame_labels \(3,\) need a prediction with frame times and as many"):
        score_video(prediction([0, 1]), video_id="v5", frame_labels=torch.tensor([0, 1, 1]))


def test_video_top1_top5_and_mean_class_accuracy_by_hand() -> None:
    six = [0.0] * 6
    scores = [
        video("a", 0, [9, 1, 2, 3, 4, 5]),  # top-1 right
        video("b", 0, [0, 9, 8, 7, 6, 1]),  # class 0 last of six: wrong at top-5 too
        video("c", 0, [5, 9, 8, 7, 6, 0]),  # class 0 fifth: right at top-5
        video("d", 1, [1, 9, 0, 0, 0, 0]),  # right
        video("e", -1, six),  # no label: not counted
    ]
    metrics = evaluation_metrics(scores, num_classes=6)
    assert (metrics.num_videos, metrics.num_labelled_videos) == (5, 4)
    assert metrics.top1 == pytest.approx(2 / 4) and metrics.top5 == pytest.approx(3 / 4)
    # Class 0: 1 of 3 right, class 1: 1 of 1; classes without videos are left out of the mean.
    assert metrics.mean_class_accuracy == pytest.approx((1 / 3 + 1) / 2)
    assert metrics.frame_accuracy is metrics.segment_f1 is metrics.detection is None
    assert metrics.logged("val") == {
        "val/top1": pytest.approx(0.5), "val/top5": pytest.approx(0.75), "val/mean_class_acc": pytest.approx(2 / 3)
    }  # fmt: skip
    assert metrics.report_lines() == ["videos: top-1 0.500, top-5 0.750, mean class accuracy 0.667 (4 labelled videos)"]


def test_top5_needs_five_classes_and_nothing_is_made_up() -> None:
    metrics = evaluation_metrics([video("a", 1, [0, 2, 1, 0]), video("b", 1, [3, 2, 1, 0])], num_classes=4)
    assert metrics.top1 == 0.5 and metrics.top5 is None and "val/top5" not in metrics.logged("val")
    assert metrics.report_lines() == [
        "videos: top-1 0.500 (no top-5 with 4 classes < 5), mean class accuracy 0.500 (2 labelled videos)"
    ]
    assert "val/top5" not in metric_names("val", num_classes=4) and "val/top5" in metric_names("val")
    unlabelled = evaluation_metrics([video("a", -1, [0, 2, 1, 0])], num_classes=4)
    assert unlabelled.logged("test") == {} and unlabelled.report_lines() == []
    with pytest.raises(ValueError, match=r"videos \['a'\] have scores of another number of classes"):
        evaluation_metrics([video("a", 1, [0, 2, 1, 0])], num_classes=3)
    with pytest.raises(ValueError, match=r"label 7 is not a class of 4"):
        video("a", 7, [0, 2, 1, 0])
    with pytest.raises(ValueError, match=r"num_labelled >= 1"):
        FrameScore(0, 0, 1.0, (), ())


def test_the_predictions_document_keeps_what_the_figures_need(tmp_path: Path) -> None:
    names = ["a", "b"]
    predictions = {
        "v1": prediction([0, 0, 0, 1, 1, 1]),
        "v2": prediction([1, 1, 1, 1], fps=10.0),
        "v3": prediction([0]),
    }
    scored = {
        "v1": score_video(predictions["v1"], video_id="v1", label=1, frame_labels=torch.tensor([0, 0, 1, 1, 1, 1])),
        "v2": score_video(predictions["v2"], video_id="v2", label=0, frame_labels=torch.tensor([0, 1, 1, -1])),
    }
    evaluations = {video_id: score_to_json(score, names) for video_id, score in scored.items()}
    json_path, _ = write_predictions(
        predictions, json_path=tmp_path / "p.json", csv_path=tmp_path / "p.csv", label_names=names,
        evaluations=evaluations,
    )  # fmt: skip
    document = json.loads(json_path.read_text())
    assert "evaluation" not in document["vidfit"]["v3"]  # predicted without labels: no record
    first = document["results"]["v1"][0]
    assert first == {"label": "a", "score": first["score"], "segment": [0.0, 3.0], "frames": [0, 3]}
    restored, label_names = scores_from_document(document)
    assert label_names == ("a", "b") and restored == list(scored.values())
    assert evaluation_metrics(restored, num_classes=2) == evaluation_metrics(list(scored.values()), num_classes=2)


def test_without_a_trained_frame_head_the_files_hold_video_classes_only(tmp_path: Path) -> None:
    names = ["a", "b", "c", "d", "e", "f"]
    one = prediction([0, 0, 2], num_classes=6)
    write_predictions({"v1": one}, json_path=tmp_path / "p.json", csv_path=tmp_path / "p.csv", label_names=names,
                      per_frame=False)  # fmt: skip
    results = json.loads((tmp_path / "p.json").read_text())["results"]["v1"]
    probabilities = one.scores.softmax(-1)
    # ActivityNet's classification results: the five most likely classes, no segment.
    assert [r["label"] for r in results[:2]] == ["a", "c"] and len(results) == 5
    assert results[0] == {"label": "a", "score": pytest.approx(float(probabilities[0]))}
    assert (tmp_path / "p.csv").read_text().splitlines() == ["video_id,label,score", f"v1,a,{probabilities[0]:.6f}"]
