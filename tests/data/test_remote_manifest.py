"""A manifest kept beside its videos behind HTTP: loaded, indexed and prepared to local files."""

from __future__ import annotations

import pytest

from tests.conftest import MakeVideo
from tests.io.test_sources import ServedFiles, http_server  # noqa: F401  (the fixture)
from vidfit.data import ManifestError, load_manifest, prepare_manifest
from vidfit.data._chunks import build_chunk_index

pytest.importorskip("aiohttp", reason="http:// sources need aiohttp (the 'remote' extra)")

MANIFEST = "labels: [walk]\nroot: .\nvideos:\n  - id: a\n    split: train\n    views: {front: videos/a.mp4}\n"


def test_remote_manifest_names_remote_videos(make_video: MakeVideo, http_server: ServedFiles, tmp_path) -> None:  # noqa: F811
    path, _ = make_video("a.mp4", num_frames=12, height=32, width=48)
    (http_server.root / "videos").mkdir()
    (http_server.root / "videos" / "a.mp4").write_bytes(path.read_bytes())
    (http_server.root / "m.yaml").write_text(MANIFEST)
    manifest = load_manifest(f"{http_server.url}/m.yaml")
    assert manifest.root == http_server.url
    assert manifest.videos[0].views["front"] == f"{http_server.url}/videos/a.mp4"
    index = build_chunk_index(manifest, cache_dir=tmp_path / "cache")
    assert index.videos["a"].views["front"].num_frames == 12
    again = build_chunk_index(manifest, cache_dir=tmp_path / "cache")  # keyed on the server's size and ETag/date
    assert again.videos["a"].views["front"].path == f"{http_server.url}/videos/a.mp4"
    prepared = load_manifest(
        prepare_manifest(f"{http_server.url}/m.yaml", size=(16, 24), gop=4, out_dir=tmp_path / "out", progress=False)
    )
    local = prepared.videos[0].views["front"]
    assert local == (tmp_path / "out" / "videos" / "a" / "front.mp4").resolve() and local.is_file()


def test_remote_manifest_paths_stay_under_its_root(http_server: ServedFiles) -> None:  # noqa: F811
    (http_server.root / "data").mkdir()
    (http_server.root / "data" / "m.yaml").write_text(MANIFEST.replace("videos/a.mp4", "../elsewhere/a.mp4"))
    with pytest.raises(ManifestError, match="outside the data root"):
        load_manifest(f"{http_server.url}/data/m.yaml")
