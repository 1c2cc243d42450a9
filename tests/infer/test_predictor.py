"""ChunkedPredictor: whole-video equivalence, hand-computed windows, streaming, OOM backoff, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import MakeVideo
from tests.infer.fakes import ColourModel, random_video
from vidfit.infer import ChunkedPredictor
from vidfit.infer._windows import Window
from vidfit.io import VideoReader


def test_whole_video_equals_one_forward_pass() -> None:
    model, video = ColourModel(), random_video(30)
    prediction = ChunkedPredictor(model, chunk_infer_size=-1, video_batch_size=4).predict_tensor(video)
    direct = model(video[None])
    assert torch.equal(prediction.scores, direct.logits[0])
    assert torch.equal(prediction.frame_logits, direct.frame_logits[0])
    assert prediction.windows == [Window(0, 30)] and prediction.label == int(direct.logits[0].argmax())
    assert (prediction.used_chunk_infer_size, prediction.oom_retries, prediction.pts_seconds) == (-1, 0, None)


@pytest.mark.parametrize("aggregation", ["mean", "max", "last", "prob"])
def test_chunked_equals_hand_computed_windows(aggregation: str) -> None:
    model, video = ColourModel(), random_video(50)
    predictor = ChunkedPredictor(
        model, chunk_infer_size=16, chunk_overlap=4, chunk_aggregation=aggregation, video_batch_size=2
    )
    prediction = predictor.predict_tensor(video)
    spans = [(0, 16), (12, 28), (24, 40), (36, 50)]
    # The model is linear in each frame's mean colour, so a window's clip logits are its frames' mean.
    colour = video.float().mean(dim=(0, 3, 4)).T / 255  # (T, 3)
    expected = torch.stack([(colour[a:b] @ model.weight).mean(0) for a, b in spans]).detach()
    assert [(w.start, w.stop) for w in prediction.windows] == spans
    assert torch.allclose(prediction.window_logits, expected, atol=1e-6)
    reduce = {
        "mean": expected.mean(0),
        "max": expected.max(0).values,
        "last": expected[-1],
        "prob": expected.softmax(-1).mean(0),
    }
    assert torch.allclose(prediction.scores, reduce[aggregation], atol=1e-6)
    assert prediction.label == int(reduce[aggregation].argmax())
    # Frame logits depend on their own frame only, so averaging overlapping windows gives the whole-video ones.
    assert torch.allclose(prediction.frame_logits, (colour @ model.weight).detach(), atol=1e-6)
    # Windows of 16, 16 | 16 | 14 frames: the short tail never shares a pass with full windows.
    assert [shape[0] for shape in model.batch_shapes] == [2, 1, 1]


def test_keypoints_and_mask_are_windowed_in_step() -> None:
    model, video = ColourModel(), random_video(20, views=1)
    keypoints = torch.rand(1, 20, 2, 2)
    mask = torch.rand(1, 20) > 0.5
    chunked = ChunkedPredictor(model, chunk_infer_size=8, chunk_overlap=3).predict_tensor(
        video, keypoints=keypoints, keypoint_mask=mask
    )
    whole = model(video[None], keypoints=keypoints[None], keypoint_mask=mask[None])
    assert torch.allclose(chunked.frame_logits, whole.frame_logits[0], atol=1e-6)


def test_windows_shorter_than_the_model_takes_are_padded_with_their_last_frame() -> None:
    model, video = ColourModel(), random_video(11, views=1)
    keypoints, mask = torch.rand(1, 11, 2, 2), torch.rand(1, 11) > 0.5
    predictor = ChunkedPredictor(model, chunk_infer_size=4, min_window_frames=4)
    prediction = predictor.predict_tensor(video, keypoints=keypoints, keypoint_mask=mask)
    assert [(w.start, w.stop) for w in prediction.windows] == [(0, 4), (4, 8), (8, 11)]
    assert [shape[3] for shape in model.batch_shapes] == [4, 4, 4]
    whole = model(video[None], keypoints=keypoints[None], keypoint_mask=mask[None])
    assert torch.allclose(prediction.frame_logits, whole.frame_logits[0], atol=1e-6)
    # The tail's clip logits see frame 10 twice: frames 8, 9, 10, 10.
    tail = whole.frame_logits[0][[8, 9, 10, 10]].mean(0)
    assert torch.allclose(prediction.window_logits[-1], tail, atol=1e-6)
    short = ChunkedPredictor(ColourModel(), min_window_frames=16).predict_tensor(random_video(5, views=1))
    assert short.frame_logits.shape == (5, 3)
    with pytest.raises(ValueError, match="min_window_frames=0 must be >= 1"):
        ChunkedPredictor(model, min_window_frames=0)


@pytest.mark.parametrize("oom_error", [torch.OutOfMemoryError, RuntimeError])
def test_oom_backoff_halves_batch_then_chunk_and_restarts(oom_error: type[RuntimeError]) -> None:
    video = random_video(64)
    model = ColourModel(max_frames=16, oom_error=oom_error)  # a pass fits at most 16 frames in all
    prediction = ChunkedPredictor(model, chunk_infer_size=32, video_batch_size=4).predict_tensor(video)
    # 2 windows x 32 fails, then 1 x 32 (batch 4 -> 2 windows at most -> 1), then windows of 16 fit.
    assert (prediction.used_video_batch_size, prediction.used_chunk_infer_size, prediction.oom_retries) == (1, 16, 2)
    assert [shape[0] * shape[3] for shape in model.batch_shapes] == [64, 32] + [16] * 4
    fresh = ChunkedPredictor(ColourModel(), chunk_infer_size=16, video_batch_size=1).predict_tensor(video)
    assert prediction.windows == fresh.windows
    assert torch.equal(prediction.window_logits, fresh.window_logits)
    assert torch.equal(prediction.scores, fresh.scores)


def test_oom_backoff_from_the_whole_video() -> None:
    prediction = ChunkedPredictor(ColourModel(max_frames=10), chunk_infer_size=-1).predict_tensor(random_video(40))
    assert (prediction.used_chunk_infer_size, prediction.oom_retries) == (10, 2)


def test_oom_at_the_floor_names_what_to_change() -> None:
    with pytest.raises(torch.OutOfMemoryError, match=r"chunk_infer_size=4 \(chunk_overlap=2\): lower chunk_overlap"):
        ChunkedPredictor(ColourModel(max_frames=0), chunk_infer_size=8, chunk_overlap=2).predict_tensor(
            random_video(16)
        )


def test_other_runtime_errors_are_not_retried() -> None:
    class Broken(ColourModel):
        def forward(self, video: torch.Tensor, **_: object) -> object:
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        ChunkedPredictor(Broken(), chunk_infer_size=8).predict_tensor(random_video(16))


def test_streaming_from_readers_equals_decoded_tensor(make_video: MakeVideo) -> None:
    front, frames = make_video("front.mkv", num_frames=20, height=16, width=16)
    left, _ = make_video("left.mkv", num_frames=20, height=16, width=16)
    keypoints = torch.rand(2, 20, 3, 2)
    predictor = ChunkedPredictor(ColourModel(), chunk_infer_size=6, chunk_overlap=2, video_batch_size=2)
    with VideoReader(front) as a, VideoReader(left) as b:
        streamed = predictor.predict_readers([a, b], keypoints=keypoints)
        pts = torch.from_numpy(a.pts_seconds)
    decoded = predictor.predict_tensor(torch.stack([frames.transpose(0, 1)] * 2), keypoints=keypoints, pts_seconds=pts)
    assert (
        streamed.windows
        == decoded.windows
        == [Window(0, 6), Window(4, 10), Window(8, 14), Window(12, 18), Window(16, 20)]
    )
    assert torch.equal(streamed.window_logits, decoded.window_logits)
    assert torch.equal(streamed.frame_logits, decoded.frame_logits)
    assert streamed.pts_seconds is not None and streamed.pts_seconds[1].item() == pytest.approx(1 / 30, abs=1e-3)


def test_views_are_read_at_their_matched_frames(make_video: MakeVideo) -> None:
    front, frames = make_video("front.mkv", num_frames=12, height=16, width=16)
    longer, _ = make_video("longer.mkv", num_frames=13, height=16, width=16)  # one frame more, past the end
    slower, _ = make_video("slower.mkv", num_frames=6, height=16, width=16, fps=15.0)
    # Frame i of the 15 fps view is on screen at the 30 fps frames 2i and 2i + 1.
    half = torch.arange(12) // 2
    view_frames = np.stack([np.arange(12), np.arange(12), half.numpy()])
    predictor = ChunkedPredictor(ColourModel(), chunk_infer_size=5, chunk_overlap=1, video_batch_size=2)
    with VideoReader(front) as a, VideoReader(longer) as b, VideoReader(slower) as c:
        streamed = predictor.predict_readers([a, b, c], view_frames=view_frames)
    video = torch.stack([frames.transpose(0, 1), frames.transpose(0, 1), frames[half].transpose(0, 1)])
    decoded = predictor.predict_tensor(video)
    assert streamed.windows == decoded.windows == [Window(0, 5), Window(4, 9), Window(8, 12)]
    assert torch.equal(streamed.window_logits, decoded.window_logits)
    assert torch.equal(streamed.frame_logits, decoded.frame_logits)


def test_views_that_cannot_be_read_in_step_are_refused(make_video: MakeVideo) -> None:
    first, _ = make_video("a.mkv", num_frames=10, height=16, width=16)
    second, _ = make_video("b.mkv", num_frames=12, height=16, width=16)
    wider, _ = make_video("c.mkv", num_frames=10, height=16, width=24)
    predictor = ChunkedPredictor(ColourModel(), chunk_infer_size=4)
    with VideoReader(first) as a, VideoReader(second) as b, VideoReader(wider) as c:
        with pytest.raises(ValueError, match=r"same number of frames .*b\.mkv \(12\); pass view_frames="):
            predictor.predict_readers([a, b])
        with pytest.raises(ValueError, match=r"view_frames must be \(2, 10\), .* got \(2, 12\)"):
            predictor.predict_readers([a, b], view_frames=np.zeros((2, 12), dtype=np.int64))
        with pytest.raises(ValueError, match=r"views differ in size: .*a\.mkv \(16x16\), .*c\.mkv \(24x16\)"):
            predictor.predict_readers([a, c])
        resized = predictor.predict_readers([a, c], size=(8, 8))
    assert resized.frame_logits.shape == (10, 3)


def test_frame_times_count_from_the_first_frame(make_video: MakeVideo) -> None:
    pts = 5.0 + torch.arange(6, dtype=torch.float64) / 10
    path, _ = make_video("late.mp4", num_frames=6, height=16, width=16, codec="libx264", crf=None, pts_seconds=pts)
    with VideoReader(path) as reader:
        assert reader.pts_seconds[0] == pytest.approx(5.0)
        prediction = ChunkedPredictor(ColourModel(), chunk_infer_size=4).predict_readers([reader])
    assert prediction.pts_seconds is not None
    assert prediction.pts_seconds.tolist() == pytest.approx((pts - 5.0).tolist(), abs=1e-4)
    assert prediction.segments()[0].start_seconds == 0.0


def test_autocast_follows_precision() -> None:
    video = random_video(12)
    full, mixed = ColourModel(), ColourModel()
    exact = ChunkedPredictor(full, chunk_infer_size=6).predict_tensor(video)
    low = ChunkedPredictor(mixed, chunk_infer_size=6, precision="bf16-mixed").predict_tensor(video)
    assert full.autocast_enabled == [False, False] and mixed.autocast_enabled == [True, True]
    assert low.scores.dtype == torch.float32 and torch.allclose(low.scores, exact.scores, atol=0.05)


def test_device_defaults_to_the_models_or_cpu() -> None:
    def parameterless(video: torch.Tensor, **_: object) -> object:
        return ColourModel()(video)

    assert ChunkedPredictor(ColourModel()).device == torch.device("cpu")
    assert ChunkedPredictor(parameterless).device == torch.device("cpu")
    assert ChunkedPredictor(ColourModel(), device="meta").device == torch.device("meta")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"video_batch_size": 0}, "video_batch_size=0 must be >= 1"),
        ({"precision": "fp16"}, "precision='fp16' is not one of '32', '16-mixed', 'bf16-mixed'"),
        ({"chunk_aggregation": "vote"}, "chunk_aggregation='vote' is not one of 'mean', 'max', 'last', 'prob'"),
        ({"chunk_infer_size": 8, "chunk_overlap": 8}, "chunk_overlap=8 must be < chunk_infer_size=8"),
    ],
)
def test_bad_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkedPredictor(ColourModel(), **settings)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    predictor, video = ChunkedPredictor(ColourModel(), chunk_infer_size=4), random_video(8)
    with pytest.raises(ValueError, match=r"video must be uint8 \(V, 3, T, H, W\), got torch.float32"):
        predictor.predict_tensor(video.float())
    with pytest.raises(ValueError, match=r"keypoints must be \(2, 8, K, D\), got \(2, 7, 3, 2\)"):
        predictor.predict_tensor(video, keypoints=torch.zeros(2, 7, 3, 2))
    with pytest.raises(ValueError, match=r"keypoint_mask must be \(2, 8\) and come with keypoints"):
        predictor.predict_tensor(video, keypoint_mask=torch.ones(2, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"pts_seconds must be \(8,\), got \(9,\)"):
        predictor.predict_tensor(video, pts_seconds=torch.zeros(9))


@pytest.mark.cuda
def test_real_cuda_oom_backs_off_and_matches_cpu() -> None:
    class Greedy(ColourModel):
        """Allocates a sixteenth of the GPU per frame in the batch: 16 frames never fit, 8 do."""

        def forward(self, video: torch.Tensor, **kwargs: object) -> object:
            per_frame = torch.cuda.get_device_properties(video.device).total_memory // 16
            held = torch.empty(video.shape[0] * video.shape[3] * per_frame, dtype=torch.uint8, device=video.device)
            del held
            return super().forward(video, **kwargs)  # type: ignore[arg-type]

    video = random_video(64)
    predictor = ChunkedPredictor(Greedy().cuda(), chunk_infer_size=32, video_batch_size=2, precision="16-mixed")
    before = torch.cuda.memory_allocated()
    prediction = predictor.predict_tensor(video)
    assert (prediction.used_video_batch_size, prediction.used_chunk_infer_size, prediction.oom_retries) == (1, 8, 3)
    assert torch.cuda.memory_allocated() == before
    on_cpu = ChunkedPredictor(ColourModel(), chunk_infer_size=8).predict_tensor(video)
    assert torch.allclose(prediction.scores, on_cpu.scores, atol=1e-2)


@pytest.mark.cuda
def test_inputs_on_any_device_give_the_cpu_result() -> None:
    video, keypoints = random_video(40), torch.rand(2, 40, 3, 2)
    expected = ChunkedPredictor(ColourModel(), chunk_infer_size=16, chunk_overlap=4).predict_tensor(
        video, keypoints=keypoints
    )
    on_gpu = ChunkedPredictor(ColourModel().cuda(), chunk_infer_size=16, chunk_overlap=4, video_batch_size=2)
    on_cpu = ChunkedPredictor(ColourModel(), chunk_infer_size=16, chunk_overlap=4, video_batch_size=2)
    # A validation batch already on the GPU, host frames bound for it, and GPU frames for a CPU model.
    for predictor, device in ((on_gpu, "cuda"), (on_gpu, "cpu"), (on_cpu, "cuda")):
        result = predictor.predict_tensor(video.to(device), keypoints=keypoints.to(device))
        assert torch.allclose(result.scores, expected.scores, atol=1e-5)
        assert torch.allclose(result.frame_logits, expected.frame_logits, atol=1e-5)
