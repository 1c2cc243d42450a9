"""Feature files and their index: whole or refused, byte for byte the same for the same inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidfit.infer import (
    FeatureEntry,
    FeatureFileError,
    FeatureIndex,
    VideoFeatures,
    load_feature_index,
    read_video_features,
    save_feature_index,
    write_video_features,
)

META = {"format": "vidfit-features-1", "video_id": "v", "settings": {"feature_dim": 6, "stride": 2}}


def _features(num_windows: int = 5) -> VideoFeatures:
    rng = np.random.default_rng(0)
    starts = np.arange(num_windows) * 2
    return VideoFeatures(
        rng.normal(size=(2, num_windows, 3)).astype(np.float16), np.stack([starts, starts + 4], axis=1),
        starts + 1.5, (starts + 1.5) / 25, np.arange(num_windows * 2 + 2) / 25, first_frame=0,
    )  # fmt: skip


def test_a_file_reads_back_as_written_and_is_the_same_bytes_each_time(tmp_path: Path) -> None:
    features = _features()
    first = write_video_features(tmp_path / "a.npz", features, meta=META)
    second = write_video_features(tmp_path / "b.npz", features, meta=META)
    assert first == second and (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temp file left
    read, meta = read_video_features(tmp_path / "a.npz")
    np.testing.assert_array_equal(read.features, features.features)
    np.testing.assert_array_equal(read.centre_seconds, features.centre_seconds)
    assert meta["video_id"] == "v" and read.feature_dim == 6 and read.num_frames == 12
    # Views side by side on channels: channel c of view v is row v * C + c.
    assert read.sequence().shape == (6, 5)
    np.testing.assert_array_equal(read.sequence()[3], features.features[1, :, 0].astype(np.float32))


def test_a_cut_or_altered_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    write_video_features(path, _features(), meta=META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeatureFileError, match="not a whole feature file"):
        read_video_features(path)
    altered = bytearray(data)
    altered[200] ^= 0xFF  # inside the features: the member's CRC no longer matches
    path.write_bytes(bytes(altered))
    with pytest.raises(FeatureFileError, match=r"v\.npz"):
        read_video_features(path)
    with pytest.raises(FeatureFileError, match="no such feature file"):
        read_video_features(tmp_path / "missing.npz")


def test_shapes_are_checked() -> None:
    features = _features()
    with pytest.raises(ValueError, match="centre_frames"):
        VideoFeatures(features.features, features.window_frames, features.centre_frames[:2],
                      features.centre_seconds, features.pts_seconds)  # fmt: skip


def test_the_index_round_trips_and_checks_each_file(tmp_path: Path) -> None:
    digest = write_video_features(tmp_path / "v.npz", _features(), meta=META)
    index = FeatureIndex(META["settings"], {"v": FeatureEntry("v.npz", 12, 5, 25.0, digest)}, {"w": "no view"},
                         tmp_path)  # fmt: skip
    path = save_feature_index(index, tmp_path / "features.yaml")
    loaded = load_feature_index(tmp_path)
    assert loaded == index
    save_feature_index(loaded, tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_bytes() == path.read_bytes()
    assert loaded.read("v").num_windows == 5
    with pytest.raises(FeatureFileError, match="no features of video 'w' \\(no view\\)"):
        loaded.read("w")
    other = FeatureIndex({"feature_dim": 6, "stride": 4}, index.videos, {}, tmp_path)
    with pytest.raises(FeatureFileError, match="other settings"):
        other.read("v")


def test_an_index_naming_a_file_outside_its_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    write_video_features(tmp_path / "v.npz", _features(), meta=META)
    index = FeatureIndex(META["settings"], {"v": FeatureEntry("../v.npz", 12, 5, 25.0, "")}, {}, tmp_path / "inside")
    with pytest.raises(FeatureFileError, match="outside the output folder"):
        index.read("v")


def test_a_missing_or_foreign_index_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FeatureFileError, match="no feature index: run vidfit extract"):
        load_feature_index(tmp_path)
    (tmp_path / "features.yaml").write_text("format: something-else\n")
    with pytest.raises(FeatureFileError, match="not an index written by vidfit extract"):
        load_feature_index(tmp_path / "features.yaml")
