"""Manifest parsing: structure, unknown keys, paths kept inside the root, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.conftest import WriteManifest
from vidfit.data import (
    ManifestError,
    Segment,
    Timeline,
    load_manifest,
    save_manifest,
)

VIDEO = {
    "id": "person_01",
    "split": "train",
    "views": {"front": "person_01/front.mp4", "left": "person_01/left.mp4"},
    "label": "adjust",
    "timeline": {"unit": "frames", "segments": [{"start": 0, "end": 5, "label": "front"}]},
    "keypoints": {"front": "person_01/kpt_front/"},
}


def test_loads_every_field_relative_to_the_manifest_folder(tmp_path: Path, write_manifest: WriteManifest) -> None:
    manifest = load_manifest(write_manifest({"labels": ["front", "adjust"], "root": "data", "videos": [VIDEO]}))
    entry = manifest.videos[0]
    assert manifest.labels == ("front", "adjust")
    assert manifest.root == (tmp_path / "data").resolve()
    assert entry.views["left"] == manifest.root / "person_01/left.mp4"
    assert list(entry.views) == ["front", "left"]
    assert entry.keypoints["front"] == manifest.root / "person_01/kpt_front"
    assert (entry.id, entry.split, entry.label) == ("person_01", "train", "adjust")
    assert entry.timeline == Timeline("frames", (Segment(0, 5, "front"),))


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_and_load_round_trip(tmp_path: Path, write_manifest: WriteManifest, suffix: str) -> None:
    original = load_manifest(write_manifest({"labels": ["front", "adjust"], "root": ".", "videos": [VIDEO]}))
    saved = save_manifest(original, tmp_path / "copy" / f"manifest{suffix}")
    loaded = load_manifest(saved)
    assert loaded.videos == original.videos
    assert (loaded.labels, loaded.root) == (original.labels, original.root)
    assert not list(saved.parent.glob(".*tmp*"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"colour": "red"}, r"video 'person_01'.*manifest.yaml: video.colour: unknown key"),
        ({"timeline": {"unit": "frames", "segments": [], "fps": 3}}, r"timeline.fps: unknown key"),
        (
            {"timeline": {"unit": "frames", "segments": [{"start": 0, "end": 1, "label": "front", "x": 0}]}},
            r"timeline.segments\[0\].x: unknown key",
        ),
        ({"timeline": {"unit": "minutes", "segments": []}}, r"unit='minutes' is not one of 'frames', 'seconds'"),
        ({"views": {"front": "../elsewhere.mp4"}}, r"views.front: path '../elsewhere.mp4' is outside the data root"),
        ({"keypoints": {"front": "/tmp/kpt"}}, r"keypoints.front: path '/tmp/kpt' is outside the data root"),
        ({"keypoints": {"back": "k.npy"}}, r"keypoints.back: names no view"),
        ({"views": {}}, r"views: needs at least one view"),
        ({"views": {"front": None}}, r"views.front: must be a non-empty path, got None"),
        ({"id": "../../escaped"}, r"video '../../escaped'.*: id: '../../escaped' is not a safe file name"),
        ({"id": ".."}, r"id: '..' is not a safe file name"),
        ({"views": {"cams/front": "a.mp4"}}, r"views.cams/front: 'cams/front' is not a safe file name"),
        ({"timeline": {"unit": "frames"}}, r"timeline.segments: must be a list .*\(\[\] for none\), it is missing"),
        ({"timeline": {"unit": "frames", "segments": None}}, r"timeline.segments: must be a list .*got None"),
        (
            {"timeline": {"unit": "frames", "segments": [{"start": float("nan"), "end": 5, "label": "front"}]}},
            r"timeline.segments\[0\]: start and end must be finite numbers",
        ),
        (
            {"timeline": {"unit": "seconds", "segments": [{"start": 0, "end": float("inf"), "label": "front"}]}},
            r"timeline.segments\[0\]: start and end must be finite numbers",
        ),
    ],
)
def test_bad_video_entries_are_reported(write_manifest: WriteManifest, change: dict, match: str) -> None:
    path = write_manifest({"labels": ["front"], "root": ".", "videos": [{**VIDEO, **change}]})
    with pytest.raises(ManifestError, match=match):
        load_manifest(path)


def test_all_problems_are_reported_at_once(write_manifest: WriteManifest) -> None:
    videos = [{**VIDEO, "colour": 1}, {**VIDEO, "views": {"front": "../x.mp4"}}]
    path = write_manifest({"labels": [], "videos": videos, "version": 2})
    with pytest.raises(ManifestError, match="4 problem") as caught:
        load_manifest(path)
    fields = [problem.field for problem in caught.value.problems]
    assert fields == ["manifest.version", "video.colour", "views.front", "id"]


def test_duplicate_labels_are_refused(write_manifest: WriteManifest) -> None:
    path = write_manifest({"labels": ["front", "adjust", "front"], "root": ".", "videos": [VIDEO]})
    with pytest.raises(ManifestError, match=r"labels: \['front'\] appear more than once"):
        load_manifest(path)


def test_containment_is_judged_on_the_path_as_written(tmp_path: Path, write_manifest: WriteManifest) -> None:
    store = tmp_path.parent / f"{tmp_path.name}-store"
    store.mkdir()
    (tmp_path / "linked").symlink_to(store, target_is_directory=True)
    video = {"id": "a", "views": {"front": "linked/a.mp4", "left": "linked/../b.mp4"}}
    entry = load_manifest(write_manifest({"labels": [], "root": ".", "videos": [video]})).videos[0]
    assert entry.views == {"front": tmp_path / "linked" / "a.mp4", "left": tmp_path / "b.mp4"}
    escaping = {"id": "a", "views": {"front": "linked/../../a.mp4"}}
    with pytest.raises(ManifestError, match=r"views.front: path 'linked/../../a.mp4' is outside the data root"):
        load_manifest(write_manifest({"labels": [], "root": ".", "videos": [escaping]}))


def test_outside_root_is_allowed_on_request(write_manifest: WriteManifest) -> None:
    path = write_manifest({"labels": [], "root": ".", "videos": [{"id": "a", "views": {"front": "../a.mp4"}}]})
    manifest = load_manifest(path, allow_outside_root=True)
    assert manifest.videos[0].views["front"] == path.parent.parent / "a.mp4"


def test_unsupported_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "manifest.toml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"extension '.toml' is not one of '.yaml', '.yml', '.json'"):
        load_manifest(path)


def test_syntax_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{labels: ", encoding="utf-8")
    with pytest.raises(ValueError, match=r"manifest.json: not valid JSON: "):
        load_manifest(path)


def test_clip_range_and_multi_label_load_and_round_trip(tmp_path: Path, write_manifest: WriteManifest) -> None:
    video = {**VIDEO, "start": 1.5, "end": 4}
    path = write_manifest({"labels": ["front", "adjust"], "root": ".", "multi_label": True, "videos": [video]})
    manifest = load_manifest(path)
    entry = manifest.videos[0]
    assert (entry.start_seconds, entry.end_seconds, manifest.multi_label) == (1.5, 4.0, True)
    assert load_manifest(write_manifest({"labels": [], "root": ".", "videos": [VIDEO]})).videos[0].start_seconds is None
    for suffix in (".json", ".yaml"):
        loaded = load_manifest(save_manifest(manifest, tmp_path / "copy" / f"manifest{suffix}"))
        assert (loaded.videos, loaded.multi_label) == (manifest.videos, True)


def test_a_single_label_manifest_is_saved_as_before(tmp_path: Path, write_manifest: WriteManifest) -> None:
    manifest = load_manifest(write_manifest({"labels": ["front", "adjust"], "root": ".", "videos": [VIDEO]}))
    text = save_manifest(manifest, tmp_path / "copy.yaml").read_text(encoding="utf-8")
    assert "multi_label" not in text and "start" not in text.replace("start: 0", "")
    assert not load_manifest(tmp_path / "copy.yaml").multi_label


def test_bad_clip_ranges_and_multi_label_are_all_reported_at_once(write_manifest: WriteManifest) -> None:
    videos = [
        {**VIDEO, "id": "a", "start": -1},
        {**VIDEO, "id": "b", "start": 3, "end": 3},
        {**VIDEO, "id": "c", "start": "soon", "end": float("inf")},
        {**VIDEO, "id": "d", "end": True},
    ]
    path = write_manifest({"labels": ["front", "adjust"], "root": ".", "multi_label": "yes", "videos": videos})
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    found = [(problem.video_id, problem.field, problem.message) for problem in caught.value.problems]
    assert found == [
        (None, "multi_label", "must be true or false, got 'yes'"),
        ("a", "start", "start=-1 must be >= 0 seconds"),
        ("b", "end", "the clip [3, 3) s must have start < end"),
        ("c", "start", "must be a finite number of seconds, got 'soon'"),
        ("c", "end", "must be a finite number of seconds, got inf"),
        ("d", "end", "must be a finite number of seconds, got True"),
    ]
