"""VideoBatch: shape checks, device moves as Lightning makes them, pinning through DataLoader, micro-batches."""

from __future__ import annotations

import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader

from vidfit.data import IGNORE_LABEL, VideoBatch, collate_samples
from vidfit.memory._oom import split_batch


def _samples(count: int, *, views: int = 2, num_frames: int = 4, keypoints: bool = True) -> list[dict]:
    samples = []
    for index in range(count):
        sample = {
            "video": torch.full((views, 3, num_frames, 8, 8), index, dtype=torch.uint8),
            "label": torch.tensor(index % 3 if index else IGNORE_LABEL),
            "frame_labels": torch.full((num_frames,), index, dtype=torch.int64),
            "meta": {"video_id": f"v{index}", "frame_indices": torch.arange(num_frames)},
        }
        if keypoints:
            sample["keypoints"] = torch.rand(views, num_frames, 5, 2)
            sample["keypoint_mask"] = torch.ones(views, num_frames, dtype=torch.bool)
        samples.append(sample)
    return samples


def test_collate_names_every_field_and_splits_into_whole_samples() -> None:
    batch = collate_samples(_samples(5))
    assert len(batch) == 5 and batch.num_frames == 4
    assert batch.video is not None and batch.video.shape == (5, 2, 3, 4, 8, 8)
    assert batch.keypoint_mask is not None and batch.keypoint_mask.shape == (5, 2, 4)
    assert batch.label.tolist() == [IGNORE_LABEL, 1, 2, 0, 1]
    parts = split_batch(batch, 2)
    assert [len(p) for p in parts] == [3, 2] and all(isinstance(p, VideoBatch) for p in parts)
    assert [m["video_id"] for p in parts for m in p.meta] == ["v0", "v1", "v2", "v3", "v4"]
    assert torch.equal(torch.cat([p.video for p in parts if p.video is not None]), batch.video)
    assert all(p.frame_labels[:, 0].tolist() == [int(m["video_id"][1]) for m in p.meta] for p in parts)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"label": torch.zeros(3, dtype=torch.int64)}, r"label must be \(B,\) and frame_labels \(B, T\), got \(3,\)"),
        (
            {"video": torch.zeros(2, 2, 3, 5, 8, 8)},
            r"video must have shape \(2, _, 3, 4, _, _\), got \(2, 2, 3, 5,",
        ),
        ({"keypoint_mask": None}, "keypoints and keypoint_mask go together"),
        ({"keypoints": torch.zeros(2, 1, 4, 5, 2)}, r"keypoints must have shape \(2, 2, 4, _, _\)"),
        ({"meta": [{}]}, "meta holds 1 entries for 2 clips"),
    ],
)
def test_bad_shapes_name_the_field(changes: dict, message: str) -> None:
    fields = collate_samples(_samples(2)).__dict__ | changes
    with pytest.raises(ValueError, match=message):
        VideoBatch(**fields)


def test_keypoint_only_and_unlabelled_batches_are_batches() -> None:
    samples = [{k: v for k, v in s.items() if k != "video"} for s in _samples(2)]
    batch = collate_samples(samples)
    assert batch.video is None and batch.keypoints is not None and len(batch) == 2
    with pytest.raises(ValueError, match=r"a sample's 'clip' is not one of 'video', 'label'"):
        collate_samples([{**samples[0], "clip": torch.zeros(1)}])


def test_lightning_moves_the_batch_with_its_to_and_keeps_meta_on_the_host() -> None:
    batch = collate_samples(_samples(2))
    moved = move_data_to_device(batch, torch.device("meta"))
    assert isinstance(moved, VideoBatch) and moved.video is not None and moved.keypoints is not None
    assert moved.video.device.type == moved.label.device.type == moved.keypoints.device.type == "meta"
    assert moved.meta[0]["frame_indices"].device.type == "cpu"
    assert batch.label.device.type == "cpu"  # the original is left as it was


@pytest.mark.cuda
def test_dataloader_pins_the_batch_and_it_moves_asynchronously() -> None:
    loader = DataLoader(_samples(4), batch_size=2, collate_fn=collate_samples, pin_memory=True)
    batch = next(iter(loader))
    assert isinstance(batch, VideoBatch) and batch.video is not None and batch.video.is_pinned()
    assert batch.label.is_pinned() and batch.frame_labels.is_pinned()
    moved = batch.to("cuda")
    torch.cuda.synchronize()
    assert moved.video is not None and torch.equal(moved.video.cpu(), batch.video)


def test_collated_videos_stay_channels_last_from_the_dataset(make_dataset) -> None:  # type: ignore[no-untyped-def]
    from vidfit.data import VideoDataset, VideoDatasetConfig

    manifest = make_dataset(num_frames=(20, 20), views={"front": {}, "left": {}})
    dataset = VideoDataset(VideoDatasetConfig(manifest, num_frames=8, sampling="consecutive"))
    samples = [dataset[index] for index in range(min(2, len(dataset)))]
    assert samples[0]["video"].shape[1] == 3 and samples[0]["video"].permute(0, 2, 3, 4, 1).is_contiguous()
    batch = collate_samples(samples)
    assert batch.video is not None and batch.video.permute(0, 1, 3, 4, 5, 2).is_contiguous()
    clips = batch.video.flatten(0, 1)
    assert clips.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(batch.video[0], samples[0]["video"])


@pytest.mark.cuda
def test_pinning_keeps_the_channels_last_layout() -> None:
    video = torch.randint(0, 255, (2, 1, 4, 8, 8, 3), dtype=torch.uint8).permute(0, 1, 5, 2, 3, 4)
    batch = VideoBatch(video=video, label=torch.zeros(2, dtype=torch.long), frame_labels=torch.zeros(2, 4).long())
    pinned = batch.pin_memory()
    assert pinned.video is not None and pinned.video.is_pinned() and pinned.video.stride() == video.stride()
    assert torch.equal(pinned.video, video)


def test_multi_label_batches_hold_classes_present_and_check_their_shapes() -> None:
    samples = [
        {**s, "label": torch.tensor([1, 0, -1], dtype=torch.int8), "frame_labels": torch.zeros(4, 3, dtype=torch.int8)}
        for s in _samples(2)
    ]
    batch = collate_samples(samples)
    assert batch.multi_label and not collate_samples(_samples(2)).multi_label
    assert (batch.label.shape, batch.frame_labels.shape, batch.num_frames) == ((2, 3), (2, 4, 3), 4)
    assert [len(part) for part in split_batch(batch, 2)] == [1, 1]
    for changes in ({"frame_labels": torch.zeros(2, 4, 5)}, {"frame_labels": torch.zeros(2, 4)}):
        with pytest.raises(ValueError, match=r"\(multi-label: \(B, C\) and \(B, T, C\)\)"):
            VideoBatch(**(batch.__dict__ | changes))
