"""Manifest parsing: structure, unknown keys, paths kept inside the root, round trips, importers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.conftest import WriteManifest
from vidfit.data import (
    ManifestError,
    Segment,
    Timeline,
    import_activitynet,
    import_frame_labels,
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


def test_import_activitynet(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v_a.mkv").touch()
    database = {
        "v_a": {"subset": "training", "annotations": [{"segment": [2.5, 4.0], "label": "jump"}]},
        "v_b": {"subset": "validation", "annotations": [{"segment": [0, 1], "label": "run"}], "url": "x"},
    }
    source = tmp_path / "anet.json"
    source.write_text(json.dumps({"database": database}), encoding="utf-8")
    manifest = import_activitynet(source, video_dir=tmp_path / "videos", view_name="cam")
    assert manifest.labels == ("jump", "run")
    first, second = manifest.videos
    assert first.views == {"cam": tmp_path / "videos" / "v_a.mkv"}
    assert second.views == {"cam": tmp_path / "videos" / "v_b.mp4"}
    assert (first.split, second.split) == ("train", "val")
    assert first.timeline == Timeline("seconds", (Segment(2.5, 4.0, "jump"),))


def test_import_frame_labels_merges_runs(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "clip.txt").write_text("idle\nidle\n\nfront\nfront\nfront\nidle\n", encoding="utf-8")
    manifest = import_frame_labels(tmp_path / "labels", video_dir=tmp_path, split="val")
    entry = manifest.videos[0]
    assert manifest.labels == ("front", "idle")
    assert (entry.id, entry.split) == ("clip", "val")
    assert entry.timeline == Timeline("frames", (Segment(0, 2, "idle"), Segment(3, 6, "front"), Segment(6, 7, "idle")))
    saved = save_manifest(manifest, tmp_path / "manifest.yaml")
    assert load_manifest(saved).videos == manifest.videos
