"""`vidfit extract`: one feature file per video and the index, resumable byte for byte, shards that merge into what one
process writes, and memory that does not grow with the video."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import vidfit.apps._extract as extract_module
from vidfit._synthetic import make_demo_dataset
from vidfit.apps import extract, merge
from vidfit.apps._extract_model import FeatureModel
from vidfit.cli import main
from vidfit.config import ConfigError, load_config
from vidfit.infer import load_feature_index
from vidfit.models import build_classifier


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four two-view videos of 24 frames at 16x16, and an action checkpoint of the tiny backbone (8 windows per
    pass), made by hand: its weights are what matters here, not how well they were trained."""
    root = tmp_path_factory.mktemp("extract")
    data = make_demo_dataset(root / "data", num_videos_per_class=1, num_frames=24, size=(16, 16))
    document = {"experiment": {"task": "action"}, "model": {"backbone": "tiny"},
                "data": {"manifest": str(data.manifest_path)}, "train": {"video_batch_size": 8}}  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(document))
    return data.manifest_path, _checkpoint(root / "action.ckpt", load_config(root / "config.yaml"), seed=3)


def _checkpoint(path: Path, config: Any, *, seed: int, views: tuple[str, ...] = ("front", "left")) -> Path:
    torch.manual_seed(seed)
    classifier = build_classifier(backbone="tiny", num_classes=4, views=views)
    hyper = {"config": config.to_dict(), "label_names": ["a", "b", "c", "d"], "views": list(views)}
    weights = {f"model.{k}": v for k, v in classifier.state_dict().items()}
    torch.save({"hyper_parameters": hyper, "state_dict": weights}, path)
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.endswith((".npz", "features.yaml"))}


def _run(dataset: tuple[Path, Path], out: Path, **options: Any) -> Any:
    manifest, checkpoint = dataset
    return extract([manifest], out=out, checkpoint=checkpoint, window=8, stride=4, progress=False, **options)


@pytest.fixture(scope="module")
def reference(dataset: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run of the whole set."""
    out = tmp_path_factory.mktemp("reference")
    _run(dataset, out)
    return out


_EXTRACT_VIDEO: Callable[..., Any] = extract_module.extract_video


def _counting(monkeypatch: pytest.MonkeyPatch, *, interrupt_at: int | None = None) -> list[str]:
    """Counts the videos extracted; with `interrupt_at`, Ctrl-C arrives as that video starts."""
    calls: list[str] = []

    def counted(predictor: Any, job: Any, **kwargs: Any) -> Any:
        calls.append(job.video_id)
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return _EXTRACT_VIDEO(predictor, job, **kwargs)

    monkeypatch.setattr(extract_module, "extract_video", counted)
    return calls


def test_one_file_per_video_with_its_windows_and_the_index(dataset: tuple[Path, Path], reference: Path) -> None:
    index = load_feature_index(reference)
    assert list(index.videos) == ["vid_000", "vid_001", "vid_002", "vid_003"] and not index.failures
    settings = index.settings
    assert (settings["window"], settings["stride"], settings["views"], settings["fused"]) == (
        8,
        4,
        ["front", "left"],
        False,
    )
    assert settings["feature_dim"] == 2 * 64 and settings["checkpoint"] == str(dataset[1].resolve())
    features = index.read("vid_000")
    # 24 frames, windows of 8 every 4: starts 0, 4, ..., 16 (the last reaches the end).
    assert features.window_frames.tolist() == [[s, s + 8] for s in range(0, 17, 4)]
    assert features.centre_frames.tolist() == [3.5, 7.5, 11.5, 15.5, 19.5]
    np.testing.assert_allclose(features.centre_seconds, features.centre_frames / 15.0, atol=1e-6)
    assert features.features.shape == (2, 5, 64) and features.features.dtype == np.float16
    assert index.videos["vid_000"].num_frames == 24


def test_a_checkpoints_weights_give_the_features(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    from vidfit.io import VideoReader

    manifest, checkpoint = dataset
    out = tmp_path / "features"
    result = extract([manifest], out=out, checkpoint=checkpoint, window=8, stride=4, fused=True, progress=False)
    assert result.failures == {} and len(result.extracted) == 4
    index = load_feature_index(out)
    assert index.settings["fused"] is True and index.settings["feature_dim"] == 64
    assert len(index.settings["checkpoint_sha256"]) == 64
    stored = index.read("vid_002")
    entry = next(v for v in yaml.safe_load(manifest.read_text())["videos"] if v["id"] == "vid_002")
    views = []
    for view in ("front", "left"):
        with VideoReader(manifest.parent / entry["views"][view]) as reader:
            views.append(reader.get_frames(8, 16).data.permute(1, 0, 2, 3))  # the third window, (3, T, H, W)
    torch.manual_seed(3)  # the checkpoint's weights, built again
    classifier = build_classifier(backbone="tiny", num_classes=4, views=("front", "left")).eval()
    with torch.no_grad():
        expected = FeatureModel(classifier, fused=True)(torch.stack(views)[None]).logits[0]
    np.testing.assert_allclose(stored.features[0, 2], expected.numpy(), rtol=2e-3, atol=2e-3)


def test_a_configs_pretrained_weights_give_the_features(
    dataset: tuple[Path, Path], reference: Path, tmp_path: Path
) -> None:
    """`--config` with the backbone's weights (`model.pretrained_path`, as `pretrained: kinetics400` loads its
    download) gives the features a checkpoint with the same backbone weights gives."""
    manifest, checkpoint = dataset
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    prefix = "model.rgb.backbone.net."
    torch.save({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}, tmp_path / "net.pt")
    document = {"model": {"backbone": "tiny", "pretrained_path": str(tmp_path / "net.pt")},
                "data": {"manifest": str(manifest)}, "train": {"video_batch_size": 8}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(document))
    out = tmp_path / "features"
    assert (
        extract([manifest], out=out, config=tmp_path / "config.yaml", window=8, stride=4, progress=False).failures == {}
    )
    index, expected = load_feature_index(out), load_feature_index(reference)
    assert index.settings["checkpoint"] is None and index.settings["views"] == ["front", "left"]
    for video_id in expected.videos:
        np.testing.assert_array_equal(index.read(video_id).features, expected.read(video_id).features)


def test_a_resumed_run_skips_whole_files_and_ends_byte_identical(
    dataset: tuple[Path, Path], reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "features"
    _counting(monkeypatch, interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        _run(dataset, out)
    # Killed on the third video: two whole files, nothing half-written, no index claiming anything.
    assert sorted(p.name for p in out.iterdir()) == ["vid_000.npz", "vid_001.npz"]
    calls = _counting(monkeypatch)
    result = _run(dataset, out)
    assert calls == ["vid_002", "vid_003"]
    assert (result.skipped, result.extracted) == (["vid_000", "vid_001"], ["vid_002", "vid_003"])
    assert _tree(out) == _tree(reference)
    calls.clear()
    assert _run(dataset, out).skipped == ["vid_000", "vid_001", "vid_002", "vid_003"] and calls == []


def test_a_file_cut_short_or_changed_is_extracted_again(
    dataset: tuple[Path, Path], reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "features"
    out.mkdir()
    for name, data in _tree(reference).items():
        (out / name).write_bytes(data)
    cut = out / "vid_001.npz"
    cut.write_bytes(cut.read_bytes()[:-100])
    (out / ".vid_002.1234-abcd.tmp.npz").write_bytes(b"half")  # what a killed writer leaves: not a feature file
    calls = _counting(monkeypatch)
    _run(dataset, out)
    assert calls == ["vid_001"]
    assert _tree(out) == _tree(reference)


def test_a_write_interrupted_midway_leaves_no_file(dataset: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import vidfit.infer._features as features_module

    def interrupted(writers: dict[Any, Callable[[Path], object]]) -> None:
        ((target, _),) = writers.items()
        temp = Path(target).with_name(f".{Path(target).stem}.1-0.tmp.npz")
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(b"half a file")
        try:
            raise KeyboardInterrupt
        finally:
            temp.unlink()  # as `write_files_atomic` does on every path

    monkeypatch.setattr(features_module, "write_files_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(dataset, tmp_path / "features")
    assert list((tmp_path / "features").iterdir()) == []


def test_shards_merged_equal_one_process(dataset: tuple[Path, Path], reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    for index in range(3):
        assert _run(dataset, out, shard=f"{index}/3").failures == {}
    with pytest.raises(FileNotFoundError):
        (out / "features.yaml").read_bytes()
    result = merge(out / "features.yaml")
    assert (result.kind, result.num_shards, result.num_videos) == ("features", 3, 4)
    assert _tree(out) == _tree(reference)


@pytest.mark.distributed
def test_torchrun_ranks_write_what_one_process_writes(
    dataset: tuple[Path, Path], reference: Path, tmp_path: Path
) -> None:
    manifest, checkpoint = dataset
    out = tmp_path / "features"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "vidfit.cli"]
    command = [*torchrun, "extract", str(manifest), "--checkpoint", str(checkpoint), "--out", str(out),
               "--window", "8", "--stride", "4"]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert _tree(out) == _tree(reference)


def test_a_shard_whose_files_changed_is_not_merged(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "features"
    for index in range(2):
        _run(dataset, out, shard=f"{index}/2")
    (out / "vid_003.npz").unlink()
    with pytest.raises(ValueError, match=r"vid_003\.npz is missing: extract the shard again"):
        merge(out / "features.yaml")


def test_memory_does_not_grow_with_the_video(dataset: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The model sees windows of the same size whatever the length, and nothing per frame is kept."""
    from vidfit.io import write_video

    largest: list[tuple[int, ...]] = []
    forward = FeatureModel.forward

    def watched(self: FeatureModel, video: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        largest.append(tuple(video.shape))
        output = forward(self, video, *args, **kwargs)
        assert output.frame_logits.numel() == 0
        return output

    monkeypatch.setattr(FeatureModel, "forward", watched)
    config = load_config(None, ["data.manifest=x.yaml", "model.backbone=tiny", "train.video_batch_size=8"])
    checkpoint = _checkpoint(tmp_path / "one-view.ckpt", config, seed=0, views=("front",))
    shapes = {}
    for frames in (40, 400):
        video = torch.randint(0, 255, (frames, 3, 16, 16), dtype=torch.uint8)
        path = write_video(tmp_path / f"v{frames}.mp4", video, fps=25.0, codec="libx264", gop=16)
        largest.clear()
        result = extract([path], out=tmp_path / f"f{frames}", checkpoint=checkpoint, window=8, stride=4,
                         progress=False)  # fmt: skip
        assert result.failures == {}
        shapes[frames] = max(largest, key=lambda shape: int(np.prod(shape)))
        (entry,) = load_feature_index(tmp_path / f"f{frames}").videos.values()  # a file is named by its path
        assert entry.num_windows == (frames - 8) // 4 + 1 and entry.file.startswith(f"v{frames}.mp4-")
    assert shapes[40] == shapes[400] == (8, 1, 3, 8, 16, 16)  # 8 windows per pass of one view


def test_bad_arguments_are_one_error(dataset: tuple[Path, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    manifest, checkpoint = dataset
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": {"backbone": "tiny"}, "data": {"manifest": str(manifest)}}))
    with pytest.raises(ConfigError, match="need window >= 1 and 1 <= stride <= window"):
        extract([manifest], out=tmp_path, checkpoint=checkpoint, window=4, stride=8)
    with pytest.raises(ConfigError, match="an untrained backbone's features mean nothing"):
        extract([manifest], out=tmp_path, config=config)
    with pytest.raises(ConfigError, match="one of --checkpoint"):
        extract([manifest], out=tmp_path, window=4, stride=2)
    other = tmp_path / "sr.yaml"
    other.write_text(yaml.safe_dump({"experiment": {"task": "super_resolution"}, "data": {"manifest": str(manifest)}}))
    assert main(["extract", str(manifest), "--out", str(tmp_path / "x"), "--config", str(other)]) == 2
    assert "error: vidfit extract takes an action model's backbone" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["extract", str(manifest), "--out", str(tmp_path), "--config", str(config), "--checkpoint", "x.ckpt"])


def test_the_command_line_reports_what_it_did(dataset: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    manifest, checkpoint = dataset
    video = manifest.parent / "vid_000" / "front.mp4"
    args = ["extract", str(video), str(manifest), "--out", str(tmp_path), "--checkpoint", str(checkpoint),
            "--window", "8"]  # fmt: skip
    assert main(args) == 1  # the two-view model cannot read a file's single view: that input fails, the rest run
    printed = capsys.readouterr()
    assert "4 videos (4 extracted, 0 already whole)" in printed.out
    assert "front.mp4: the model takes the views ['front', 'left']" in printed.err
    assert main(args[:1] + args[2:]) == 0
    assert "4 videos (0 extracted, 4 already whole)" in capsys.readouterr().out
