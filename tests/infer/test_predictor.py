"""ChunkedPredictor: whole-video equivalence, hand-computed windows, streaming, OOM backoff, output files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import MakeVideo
from vidfit.infer import (
    ChunkedPredictor,
    Window,
    frame_accuracy,
    segment_f1,
    segments_from_labels,
    write_frame_csv,
    write_predictions_json,
)
from vidfit.io import VideoReader


class ColourModel(torch.nn.Module):
    """Frame logits are a linear map of each frame's mean colour; clip logits their mean over time."""

    def __init__(self, max_frames: int | None = None) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0], [0.5, 0.0, 1.0]]))
        self.max_frames = max_frames
        self.batch_shapes: list[tuple[int, ...]] = []

    def forward(self, video: torch.Tensor, keypoints: torch.Tensor | None = None, keypoint_mask=None):  # type: ignore[no-untyped-def]
        self.batch_shapes.append(tuple(video.shape))
        if self.max_frames is not None and video.shape[0] * video.shape[3] > self.max_frames:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        colour = video.float().mean(dim=(1, 4, 5)).transpose(1, 2) / 255  # (B, T, 3)
        if keypoints is not None:
            colour = colour + keypoints.sum(dim=(1, 3, 4))[..., None]
        frame_logits = colour @ self.weight
        return SimpleNamespace(logits=frame_logits.mean(dim=1), frame_logits=frame_logits)


def random_video(num_frames: int, views: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (views, 3, num_frames, 4, 4), generator=torch.Generator().manual_seed(num_frames)).to(
        torch.uint8
    )


def test_whole_video_equals_one_forward_pass() -> None:
    model, video = ColourModel(), random_video(30)
    prediction = ChunkedPredictor(model, chunk_infer_size=-1).predict_tensor(video)
    direct = model(video[None])
    assert torch.allclose(prediction.scores, direct.logits[0])
    assert torch.allclose(prediction.frame_logits, direct.frame_logits[0])
    assert prediction.windows == [Window(0, 30)] and prediction.label == int(direct.logits[0].argmax())


@pytest.mark.parametrize("aggregation", ["mean", "max", "last", "prob"])
def test_chunked_equals_hand_computed_windows(aggregation: str) -> None:
    model, video = ColourModel(), random_video(50)
    predictor = ChunkedPredictor(
        model, chunk_infer_size=16, chunk_overlap=4, chunk_aggregation=aggregation, video_batch_size=2
    )
    prediction = predictor.predict_tensor(video)
    batch_sizes = [shape[0] for shape in model.batch_shapes]
    starts = [(0, 16), (12, 28), (24, 40), (36, 50)]
    expected = torch.stack([model(video[None, :, :, a:b]).logits[0] for a, b in starts])
    assert [(w.start, w.stop) for w in prediction.windows] == starts
    assert torch.allclose(prediction.window_logits, expected)
    reduce = {
        "mean": expected.mean(0),
        "max": expected.max(0).values,
        "last": expected[-1],
        "prob": expected.softmax(-1).mean(0),
    }
    assert torch.allclose(prediction.scores, reduce[aggregation])
    # Per-frame logits are per frame here, so averaging overlapping windows gives the whole-video values.
    assert torch.allclose(prediction.frame_logits, model(video[None]).frame_logits[0], atol=1e-6)
    assert batch_sizes == [2, 1, 1]  # windows 16, 16 | 16 | 14: the short tail is never batched with full ones


def test_keypoints_are_windowed_in_step() -> None:
    model, video = ColourModel(), random_video(20, views=1)
    keypoints = torch.rand(1, 20, 2, 2)
    mask = torch.ones(1, 20, dtype=torch.bool)
    chunked = ChunkedPredictor(model, chunk_infer_size=8).predict_tensor(video, keypoints=keypoints, keypoint_mask=mask)
    whole = model(video[None], keypoints=keypoints[None])
    assert torch.allclose(chunked.frame_logits, whole.frame_logits[0], atol=1e-6)


def test_oom_backoff_halves_batch_then_chunk_and_never_mixes() -> None:
    video = random_video(64)
    model = ColourModel(max_frames=16)  # a pass fits at most 16 frames in total
    prediction = ChunkedPredictor(model, chunk_infer_size=32, video_batch_size=4).predict_tensor(video)
    assert (prediction.used_video_batch_size, prediction.used_chunk_infer_size) == (1, 16)
    assert prediction.oom_retries == 3
    fresh = ChunkedPredictor(ColourModel(), chunk_infer_size=16, video_batch_size=1).predict_tensor(video)
    assert torch.equal(prediction.window_logits, fresh.window_logits)
    assert all(w.num_frames == 16 for w in prediction.windows)


def test_oom_at_the_floor_names_what_to_change() -> None:
    model = ColourModel(max_frames=0)
    with pytest.raises(torch.OutOfMemoryError, match=r"chunk_overlap=2\): lower chunk_overlap"):
        ChunkedPredictor(model, chunk_infer_size=8, chunk_overlap=2).predict_tensor(random_video(16))


def test_streaming_from_readers_equals_decoded_tensor(make_video: MakeVideo) -> None:
    front, frames = make_video("front.mkv", num_frames=37)
    left, _ = make_video("left.mkv", num_frames=37)
    predictor = ChunkedPredictor(ColourModel(), chunk_infer_size=10, chunk_overlap=3, video_batch_size=2)
    with VideoReader(front) as a, VideoReader(left) as b:
        streamed = predictor.predict_readers([a, b])
        pts = torch.from_numpy(a.pts_seconds)
    video = torch.stack([frames.permute(1, 0, 2, 3)] * 2)
    decoded = predictor.predict_tensor(video, pts_seconds=pts)
    assert torch.allclose(streamed.window_logits, decoded.window_logits)
    assert torch.allclose(streamed.frame_logits, decoded.frame_logits)
    assert streamed.pts_seconds[1].item() == pytest.approx(1 / 30, abs=1e-3)


def test_views_of_different_lengths_are_refused(make_video: MakeVideo) -> None:
    first, _ = make_video("a.mkv", num_frames=10)
    second, _ = make_video("b.mkv", num_frames=12)
    with VideoReader(first) as a, VideoReader(second) as b, pytest.raises(ValueError, match="same number of frames"):
        ChunkedPredictor(ColourModel(), chunk_infer_size=4).predict_readers([a, b])


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="video_batch_size=0"):
        ChunkedPredictor(ColourModel(), video_batch_size=0)
    with pytest.raises(ValueError, match="precision='fp16'"):
        ChunkedPredictor(ColourModel(), precision="fp16")  # type: ignore[arg-type]


def test_segments_scores_and_output_files(tmp_path: Path) -> None:
    video = torch.zeros(1, 3, 6, 2, 2, dtype=torch.uint8)
    video[:, 1, :3] = 255  # green, then red from frame 3: the frame label flips from class 1 to class 0
    video[:, 0, 3:] = 255
    prediction = ChunkedPredictor(ColourModel(), chunk_infer_size=4, chunk_overlap=1).predict_tensor(
        video, pts_seconds=torch.arange(6, dtype=torch.float64) * 0.5 + 10
    )
    segments = prediction.segments()
    assert [(s.start_frame, s.stop_frame, s.label) for s in segments] == [(0, 3, 1), (3, 6, 0)]
    assert (segments[0].start_seconds, segments[0].stop_seconds, segments[1].stop_seconds) == (10.0, 11.5, 13.0)
    truth = torch.tensor([1, 1, 1, 1, 0, -1])
    assert frame_accuracy(prediction.frame_labels, truth) == pytest.approx(4 / 5)
    true_segments = segments_from_labels(truth, prediction.pts_seconds)
    assert [(s.start_frame, s.stop_frame, s.label) for s in true_segments] == [(0, 4, 1), (4, 5, 0)]
    assert segment_f1(segments, true_segments) == pytest.approx(0.5)  # (0,3) hits (0,4) at IoU 0.75; (3,6) misses
    names = ["red", "green", "blue"]
    document = json.loads(
        write_predictions_json({"v1": prediction}, tmp_path / "p.json", label_names=names).read_text()
    )
    assert document["results"]["v1"][0] == {"label": "green", "score": segments[0].score, "segment": [10.0, 11.5]}
    assert document["vidfit"]["v1"]["num_windows"] == 2
    rows = list(csv.DictReader(write_frame_csv({"v1": prediction}, tmp_path / "f.csv", label_names=names).open()))
    assert [r["label"] for r in rows] == ["green"] * 3 + ["red"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "p.json"]
