"""VideoDataset: frames, labels and keypoints line up frame for frame, views stay in sync, loaders batch."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

import vidfit.data._loader as loader_module
from tests.data.conftest import KEYPOINT_DIMS, NUM_KEYPOINTS, MakeDataset, offset_pts
from tests.videos import frame_ids
from vidfit.data import ManifestError, VideoDataset, VideoDatasetConfig, collate_samples, make_loader
from vidfit.data._dataset import _frame_buffer
from vidfit.io import VideoReader, write_video

LABELS = ("idle", "front", "adjust")
SEGMENTS = [
    {"start": 0, "end": 7, "label": "front"},
    {"start": 7, "end": 18, "label": "adjust"},
    {"start": 20, "end": 25, "label": "idle"},
]


def expected_labels(frames: list[int]) -> list[int]:
    """The annotation of `SEGMENTS`, frame by frame."""
    per_frame = [1] * 7 + [2] * 11 + [-1] * 2 + [0] * 5
    return [per_frame[i] for i in frames]


def test_chunks_carry_their_frames_and_labels_across_seams(make_dataset: MakeDataset) -> None:
    path = make_dataset(num_frames=(25,), timelines={0: {"unit": "frames", "segments": SEGMENTS}})
    config = VideoDatasetConfig(manifest=path, mode="chunk", max_video_frames=10, chunk_overlap_frames=3)
    dataset = VideoDataset(config)
    starts = []
    for sample in (dataset[i] for i in range(len(dataset))):
        frames = sample["meta"]["frame_indices"].tolist()
        starts.append(frames[0])
        assert sample["video"].dtype == torch.uint8
        assert sample["video"].shape == (1, 3, len(frames), 32, 32)
        assert frame_ids(sample["video"][0].permute(1, 0, 2, 3)) == frames
        assert sample["frame_labels"].tolist() == expected_labels(frames)
        assert sample["label"].item() == -1
        np.testing.assert_allclose(sample["meta"]["pts_seconds"].numpy(), np.array(frames) / 30, atol=1e-3)
    assert starts == [0, 7, 14, 21]
    dataset.close()


def test_seconds_timeline_counts_from_the_first_frame(make_dataset: MakeDataset) -> None:
    timeline = {"unit": "seconds", "segments": [{"start": 0.5, "end": 1.2, "label": "adjust"}]}
    views = {"front": {"fps": 10.0, "pts_seconds": offset_pts(20, fps=10.0, begin_seconds=2.0)}}
    path = make_dataset(num_frames=(20,), views=views, timelines={0: timeline}, extra={0: {"label": "front"}})
    sample = VideoDataset(VideoDatasetConfig(manifest=path, mode="chunk"))[0]
    assert sample["frame_labels"].tolist() == [-1] * 5 + [2] * 7 + [-1] * 8
    assert sample["label"].item() == 1
    assert sample["meta"]["pts_seconds"][0].item() == pytest.approx(2.0, abs=1e-3)


@pytest.mark.parametrize("sampling", ["random", "uniform", "consecutive"])
def test_clips_stay_inside_their_chunk(make_dataset: MakeDataset, sampling: str) -> None:
    path = make_dataset(num_frames=(30,), timelines={0: {"unit": "frames", "segments": SEGMENTS}})
    config = VideoDatasetConfig(manifest=path, num_frames=4, sampling=sampling, frame_stride=2, max_video_frames=12)
    dataset = VideoDataset(config)
    for position, chunk in enumerate(dataset.index):
        sample = dataset[position]
        frames = sample["meta"]["frame_indices"].tolist()
        assert frame_ids(sample["video"][0].permute(1, 0, 2, 3)) == frames
        assert all(chunk.start_frame <= f < chunk.stop_frame for f in frames)
        assert frames == sorted(frames)
        if sampling == "consecutive" and chunk.num_frames >= 7:
            assert np.diff(frames).tolist() == [2, 2, 2]
        if sampling == "uniform":
            step = chunk.num_frames / 4
            assert frames == [chunk.start_frame + int((k + 0.5) * step) for k in range(4)]
        if sampling == "random":
            assert len(set(frames)) == 4


def test_short_chunk_repeats_its_last_frame(make_dataset: MakeDataset) -> None:
    path = make_dataset(num_frames=(5,))
    config = VideoDatasetConfig(manifest=path, num_frames=4, sampling="consecutive", frame_stride=2)
    assert VideoDataset(config)[0]["meta"]["frame_indices"].tolist() == [0, 2, 4, 4]


def test_random_clips_are_reproducible_from_the_seed(make_dataset: MakeDataset) -> None:
    path = make_dataset(num_frames=(60,))

    def draws(seed: int) -> list[list[int]]:
        dataset = VideoDataset(VideoDatasetConfig(manifest=path, num_frames=3, seed=seed, load_rgb=False))
        return [dataset[0]["meta"]["frame_indices"].tolist() for _ in range(4)]

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)


def test_views_sync_by_time_with_offsets_and_different_fps(make_dataset: MakeDataset) -> None:
    dataset = VideoDataset(VideoDatasetConfig(manifest=two_views(make_dataset), mode="chunk", views=("left", "front")))
    sample = dataset[0]
    reference = list(range(30))
    left = [i // 2 for i in reference]
    assert sample["meta"]["frame_indices"].tolist() == reference
    assert sample["meta"]["view_frame_indices"].tolist() == [left, reference]
    assert frame_ids(sample["video"][0].permute(1, 0, 2, 3)) == left
    assert frame_ids(sample["video"][1].permute(1, 0, 2, 3)) == reference


def two_views(make_dataset: MakeDataset) -> Path:
    """front: 30 frames at 30 fps from 0 s; left: 15 frames at 15 fps from 1 s, covering the same second."""
    left = {"fps": 15.0, "num_frames": 15, "pts_seconds": offset_pts(15, fps=15.0, begin_seconds=1.0)}
    return make_dataset(num_frames=(30,), views={"front": {"fps": 30.0}, "left": left})


def test_keypoints_line_up_with_each_views_frames(make_dataset: MakeDataset, tmp_path: Path) -> None:
    left = {"fps": 15.0, "num_frames": 10}
    path = make_dataset(
        num_frames=(20,),
        views={"front": {}, "left": left, "right": {}},
        keypoints={"front": "npz", "left": "npy"},
    )
    np.savez(tmp_path / "v0" / "kpt_front" / "000008_sam3d_body.npz", keypoints=np.full((5, 3), np.nan))
    config = VideoDatasetConfig(manifest=path, num_frames=6, sampling="uniform", load_kpt=True, load_rgb=False)
    sample = VideoDataset(config)[0]
    front, left_frames, _ = sample["meta"]["view_frame_indices"].tolist()
    assert "video" not in sample
    assert 8 in front
    assert sample["keypoints"].shape == (3, 6, NUM_KEYPOINTS, KEYPOINT_DIMS)
    assert sample["keypoints"].dtype == torch.float32
    assert sample["keypoints"][0, :, 0, 0].tolist() == [0.0 if f == 8 else float(f) for f in front]
    assert sample["keypoints"][1, :, 2, 1].tolist() == [float(f) for f in left_frames]
    assert sample["keypoint_mask"].tolist() == [[f != 8 for f in front], [True] * 6, [False] * 6]
    assert not sample["keypoints"][2].any()


def test_image_size_resizes_while_decoding(make_dataset: MakeDataset) -> None:
    config = VideoDatasetConfig(manifest=make_dataset(num_frames=(12,)), num_frames=5, image_size=[16, 24])
    assert VideoDataset(config)[0]["video"].shape == (1, 3, 5, 16, 24)


def test_dataset_pickles_without_open_readers(make_dataset: MakeDataset) -> None:
    dataset = VideoDataset(VideoDatasetConfig(manifest=make_dataset(num_frames=(12,)), num_frames=4))
    first = dataset[0]
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._pool is None
    assert copy[0]["video"].shape == first["video"].shape
    dataset.close()
    copy.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "video"}, r"mode='video' is not one of 'clip', 'chunk'"),
        ({"sampling": "dense"}, r"sampling='dense' is not one of 'random', 'uniform', 'consecutive'"),
        ({"tail": "pad"}, r"tail='pad' is not one of 'keep', 'merge', 'drop'"),
        ({"on_error": "warn"}, r"on_error='warn' is not one of 'raise', 'skip'"),
        ({"num_frames": 0}, r"num_frames=0 must be >= 1"),
        ({"image_size": (0, 4)}, r"image_size=\(0, 4\) must be \(height, width\)"),
        ({"num_threads": -1}, r"num_threads=-1 must be >= 0"),
        ({"decode_backend": "cuda"}, r"decode_backend='cuda' is not one of 'pyav', 'nvdec', 'torchcodec'"),
    ],
)
def test_bad_config_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VideoDatasetConfig(manifest="m.yaml", **kwargs)


def test_views_must_exist_and_stack(make_dataset: MakeDataset) -> None:
    path = make_dataset(num_frames=(8,), views={"front": {}, "left": {"height": 16}})
    with pytest.raises(ManifestError, match=r"views differ in \(height, width\) \[\(16, 32\), \(32, 32\)\]"):
        VideoDataset(VideoDatasetConfig(manifest=path))
    with pytest.raises(ManifestError, match=r"video 'v0'.*views: lacks view\(s\) \['top'\]"):
        VideoDataset(VideoDatasetConfig(manifest=path, views=("front", "top")))
    with pytest.raises(
        ManifestError, match=r"load_kpt needs one keypoint shape \(K, D\) across the dataset, found \[\]"
    ):
        VideoDataset(VideoDatasetConfig(manifest=path, views=("front",), load_kpt=True))


def test_skip_leaves_out_videos_lacking_views_or_of_other_sizes(make_dataset: MakeDataset, tmp_path: Path) -> None:
    path = make_dataset(
        num_frames=(8, 8, 8), views={"front": {}, "left": {}}, extra={1: {"views": {"front": "v1/front.mkv"}}}
    )
    smaller = torch.zeros(8, 3, 16, 32, dtype=torch.uint8)
    write_video(tmp_path / "v2" / "left.mkv", smaller, fps=30.0, codec="libx264rgb", crf=0)
    report = tmp_path / "skipped.json"
    dataset = VideoDataset(VideoDatasetConfig(manifest=path, on_error="skip", report_path=report))
    assert list(dataset.index.videos) == ["v0"]
    assert dataset.views == ("front", "left")
    skipped = [(problem["video_id"], problem["field"]) for problem in json.loads(report.read_text())["skipped"]]
    assert skipped == [("v1", "views"), ("v2", "image_size")]
    resized = VideoDataset(VideoDatasetConfig(manifest=path, on_error="skip", image_size=(16, 16)))
    assert list(resized.index.videos) == ["v0", "v2"]


def test_keypoint_file_of_another_shape_is_named_when_loaded(make_dataset: MakeDataset, tmp_path: Path) -> None:
    path = make_dataset(num_frames=(10,), keypoints={"front": "npz"})
    wrong = tmp_path / "v0" / "kpt_front" / "000007_sam3d_body.npz"
    np.savez(wrong, keypoints=np.zeros((4, 3), dtype=np.float32))
    dataset = VideoDataset(VideoDatasetConfig(manifest=path, mode="chunk", load_kpt=True, load_rgb=False))
    with pytest.raises(ValueError, match=rf"{re.escape(str(wrong))}: keypoints of shape \(4, 3\), expected \(5, 3\)"):
        dataset[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback taken without a GPU")
def test_decode_backend_reaches_the_readers(make_dataset: MakeDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidfit.io._decoders._NVDEC_FALLBACKS_SAID", set())  # said once a process
    config = VideoDatasetConfig(manifest=make_dataset(num_frames=(6,)), num_frames=2, decode_backend="nvdec")
    with pytest.warns(UserWarning, match=r"backend='nvdec' unavailable .*; decoding with 'pyav' \(.*front.mkv"):
        sample = VideoDataset(config)[0]
    assert sample["video"].shape == (1, 3, 2, 32, 32)


def test_collate_keeps_uint8_and_meta_lists(make_dataset: MakeDataset) -> None:
    dataset = VideoDataset(VideoDatasetConfig(manifest=make_dataset(num_frames=(10, 10)), num_frames=3))
    batch = collate_samples([dataset[0], dataset[1]])
    assert batch.video is not None and batch.video.shape == (2, 1, 3, 3, 32, 32)
    assert batch.video.dtype == torch.uint8
    assert [meta["video_id"] for meta in batch.meta] == ["v0", "v1"]
    chunks = VideoDataset(VideoDatasetConfig(manifest=make_dataset(num_frames=(10,)), mode="chunk", max_video_frames=7))
    with pytest.raises(ValueError, match=r"cannot batch 'frame_labels' of shapes \[\(3,\), \(7,\)\].*batch_size=1"):
        collate_samples([chunks[0], chunks[1]])


def test_loader_workers_are_reproducible(make_dataset: MakeDataset) -> None:
    dataset = VideoDataset(VideoDatasetConfig(manifest=make_dataset(num_frames=(40, 40, 40, 40)), num_frames=3))

    def epoch(seed: int) -> list[list[int]]:
        loader = make_loader(dataset, batch_size=2, shuffle=True, num_workers=2, seed=seed, persistent_workers=False)
        return [meta["frame_indices"].tolist() for batch in loader for meta in batch.meta]

    first = epoch(0)
    assert len(first) == 4
    assert first == epoch(0)
    assert first != epoch(1)


def test_loader_seed_applies_without_workers(make_dataset: MakeDataset) -> None:
    config = VideoDatasetConfig(manifest=make_dataset(num_frames=(60,) * 4), num_frames=3, load_rgb=False)
    dataset = VideoDataset(config)

    def epoch(seed: int) -> list[list[int]]:
        loader = make_loader(dataset, batch_size=2, shuffle=False, num_workers=0, seed=seed)
        return [meta["frame_indices"].tolist() for batch in loader for meta in batch.meta]

    first = epoch(0)
    assert first == epoch(0)
    assert first != epoch(1)


class WorkerProbe(VideoDataset):
    """Reports the state `seed_worker` set up in the worker that loads each sample."""

    def __getitem__(self, position: int) -> dict:
        state = [np.random.randint(1 << 30), torch.get_num_threads(), self.reader_threads]
        return {"meta": {}, "state": torch.tensor(state)}


def test_workers_get_distinct_seeds_and_capped_threads(make_dataset: MakeDataset) -> None:
    config = VideoDatasetConfig(manifest=make_dataset(num_frames=(8,) * 4), num_threads=3)
    probe = WorkerProbe(config)
    loader = make_loader(probe, batch_size=1, shuffle=False, num_workers=2, seed=0, collate_fn=default_collate)
    states = [batch["state"][0].tolist() for batch in loader]
    draws = {draw for draw, _, _ in states}
    assert len(draws) == 4
    assert {(threads, readers) for _, threads, readers in states} == {(1, 3)}


@pytest.mark.parametrize(("cores", "num_workers", "expected"), [(12, 0, 12), (12, 2, 6), (5, 2, 2), (1, 2, 1)])
def test_ffmpeg_threads_are_shared_among_workers_by_default(
    make_dataset: MakeDataset, monkeypatch: pytest.MonkeyPatch, cores: int, num_workers: int, expected: int
) -> None:
    monkeypatch.setattr(loader_module.os, "cpu_count", lambda: cores)
    dataset = WorkerProbe(VideoDatasetConfig(manifest=make_dataset(num_frames=(8,))))
    loader = make_loader(dataset, batch_size=1, shuffle=False, num_workers=num_workers, seed=0)
    if num_workers == 0:
        assert dataset.reader_threads == expected
    else:
        assert loader.worker_init_fn is not None and loader.worker_init_fn.keywords == {"reader_threads": expected}


def test_a_batch_decodes_into_one_buffer_that_collation_hands_on(make_dataset: MakeDataset) -> None:
    manifest = make_dataset(num_frames=(20, 20, 20), views={"front": {}, "left": {}})
    config = VideoDatasetConfig(manifest, num_frames=5, sampling="random", seed=3)
    batched = VideoDataset(config).__getitems__([2, 0, 1])
    one_by_one = VideoDataset(config)
    singles = [one_by_one[position] for position in (2, 0, 1)]
    for sample, single in zip(batched, singles, strict=True):
        assert torch.equal(sample["video"], single["video"])
        assert torch.equal(sample["meta"]["frame_indices"], single["meta"]["frame_indices"])
        assert frame_ids(sample["video"][0].permute(1, 0, 2, 3)) == sample["meta"]["frame_indices"].tolist()
    storage = batched[0]["video"].untyped_storage().data_ptr()
    assert all(sample["video"].untyped_storage().data_ptr() == storage for sample in batched)
    batch = collate_samples(batched)
    assert batch.video is not None and batch.video.untyped_storage().data_ptr() == storage
    assert batch.video.flatten(0, 1).is_contiguous(memory_format=torch.channels_last_3d)
    assert all(torch.equal(batch.video[i], sample["video"]) for i, sample in enumerate(batched))
    # Out of buffer order, the same samples are stacked (copied) in the order given.
    reordered = collate_samples([batched[1], batched[0]])
    assert reordered.video is not None and reordered.video.untyped_storage().data_ptr() != storage
    assert torch.equal(reordered.video[0], batched[1]["video"]) and torch.equal(reordered.video[1], batched[0]["video"])


def test_samples_of_different_shapes_or_transformed_decode_apart(make_dataset: MakeDataset) -> None:
    manifest = make_dataset(num_frames=(10,))
    chunks = VideoDataset(VideoDatasetConfig(manifest, mode="chunk", max_video_frames=7)).__getitems__([0, 1])
    assert [tuple(sample["video"].shape) for sample in chunks] == [(1, 3, 7, 32, 32), (1, 3, 3, 32, 32)]
    assert [frame_ids(sample["video"][0].permute(1, 0, 2, 3)) for sample in chunks] == [list(range(7)), [7, 8, 9]]

    def halve(frames: torch.Tensor) -> torch.Tensor:
        return frames[..., ::2, ::2]

    config = VideoDatasetConfig(manifest, num_frames=4, sampling="consecutive", transform=halve)
    samples = VideoDataset(config).__getitems__([0, 0])
    assert all(sample["video"].shape == (1, 3, 4, 16, 16) for sample in samples)


class _SharedBufferProbe(torch.utils.data.Dataset[bool]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, position: int) -> bool:
        return _frame_buffer((2, 3)).is_shared()


def test_frames_are_decoded_into_shared_memory_inside_loader_workers() -> None:
    probe = _SharedBufferProbe()
    assert [probe[0]] == [False]
    loader = torch.utils.data.DataLoader(probe, batch_size=None, num_workers=1)
    assert list(loader) == [True, True]


def test_a_clip_range_samples_only_its_frames_and_labels_keep_the_videos_time(
    make_dataset: MakeDataset, tmp_path: Path
) -> None:
    timeline = {"unit": "seconds", "segments": [{"start": 0.5, "end": 0.7, "label": "adjust"}]}
    path = make_dataset(num_frames=(30,), timelines={0: timeline}, extra={0: {"start": 0.3, "end": 0.6}})
    with VideoReader(tmp_path / "v0" / "front.mkv") as reader:
        decoded = reader.get_frames(0, len(reader))
    times = decoded.pts_seconds - decoded.pts_seconds[0]
    expected = [i for i, t in zip(frame_ids(decoded.data), times.tolist(), strict=True) if 0.3 <= t < 0.6]
    sample = VideoDataset(VideoDatasetConfig(manifest=path, mode="chunk"))[0]
    frames = sample["meta"]["frame_indices"].tolist()
    assert frames == expected == list(range(9, 18))
    assert frame_ids(sample["video"][0].permute(1, 0, 2, 3)) == frames
    assert sample["frame_labels"].tolist() == [-1] * 6 + [2] * 3  # frames 15-17 lie in [0.5, 0.7) s
    clips = VideoDataset(VideoDatasetConfig(manifest=path, num_frames=4, max_video_frames=4))
    for position in range(len(clips)):
        assert all(9 <= f < 18 for f in clips[position]["meta"]["frame_indices"].tolist())


def test_multi_label_targets_are_multi_hot_with_background_and_unknown(make_dataset: MakeDataset) -> None:
    segments = [{"start": 2, "end": 6, "label": "front"}, {"start": 4, "end": 8, "label": "adjust"}]
    path = make_dataset(
        num_frames=(10, 6), timelines={0: {"unit": "frames", "segments": segments}}, extra={1: {"label": "idle"}}
    )
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**document, "multi_label": True}), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"multi_label: is true: segments may overlap.*set multi_label=True"):
        VideoDataset(VideoDatasetConfig(manifest=path))
    dataset = VideoDataset(VideoDatasetConfig(manifest=path, mode="chunk", multi_label=True))
    first, second = dataset[0], dataset[1]
    idle, front, adjust = ([int(c == k) for k in range(3)] for c in range(3))
    nothing = [0, 0, 0]
    assert first["frame_labels"].dtype == torch.int8
    assert (
        first["frame_labels"].tolist() == [nothing] * 2 + [front] * 2 + [[0, 1, 1]] * 2 + [adjust] * 2 + [nothing] * 2
    )
    assert first["label"].tolist() == [0, 1, 1]
    assert second["frame_labels"].tolist() == [[-1, -1, -1]] * 6  # no timeline: nothing known of its frames
    assert second["label"].tolist() == idle
    batch = collate_samples([dataset[0], dataset[0]])
    assert batch.multi_label and batch.frame_labels.shape == (2, 10, 3)
    unlabelled = VideoDataset(VideoDatasetConfig(manifest=make_dataset(num_frames=(5,)), multi_label=True))
    assert unlabelled[0]["label"].tolist() == [-1, -1, -1]
