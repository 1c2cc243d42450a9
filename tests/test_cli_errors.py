"""Every expected failure of a command is one `error:` line and exit 2, never a traceback (unless --debug)."""

from __future__ import annotations

import json
import pickle
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import MakeVideo, tiny_overrides
from tests.zipbomb import checkpoint_bomb
from vidfit.cli import main
from vidfit.io import write_video


def _config(tmp_path: Path, manifest: Path | str) -> Path:
    path = tmp_path / "run.yaml"
    overrides = tiny_overrides(Path(manifest), tmp_path / "runs")
    sections: dict[str, dict[str, str]] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    path.write_text(
        "\n".join(f"{s}:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()) for s, keys in sections.items())
    )
    return path


def _bad_manifests(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    empty = tmp_path / "empty.yaml"
    empty.write_text("labels: [a]\nroot: .\nvideos: []\n")
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("!!python/object/apply:os.system ['echo owned']\n")
    return {"missing": tmp_path / "missing.yaml", "folder": folder, "no videos": empty, "yaml tag": tagged}


@pytest.mark.parametrize("kind", ["missing", "folder", "no videos", "yaml tag"])
def test_fit_with_a_bad_manifest_is_one_error_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _bad_manifests(tmp_path)[kind]
    code = main(["fit", "--config", str(_config(tmp_path, manifest))])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert str(manifest.name) in err
    assert not (tmp_path / "runs").exists()


def _bad_checkpoints(tmp_path: Path, good: Path) -> dict[str, Path]:
    files = {
        "missing": tmp_path / "missing.ckpt",
        "empty": tmp_path / "empty.ckpt",
        "truncated": tmp_path / "truncated.ckpt",
        "not a zip": tmp_path / "text.ckpt",
        "payload": tmp_path / "payload.ckpt",
        "plain tensor": tmp_path / "tensor.ckpt",
        "zip bomb": tmp_path / "bomb.ckpt",
    }
    checkpoint_bomb(files["zip bomb"], declared_bytes=2 << 30)
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(good.read_bytes()[:2000])
    files["not a zip"].write_text("not a checkpoint\n")
    files["payload"].write_bytes(pickle.dumps(Path("/etc/passwd")))
    torch.save(torch.zeros(3), files["plain tensor"])
    return files


@pytest.mark.parametrize("command", ["predict", "fit", "validate"])
def test_every_bad_checkpoint_is_one_error_line(
    command: str, tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, tiny_manifest)
    for kind, checkpoint in _bad_checkpoints(tmp_path, tiny_checkpoint).items():
        if command == "predict":
            arguments = [
                "predict",
                "--checkpoint",
                str(checkpoint),
                str(tiny_manifest),
                "--out",
                str(tmp_path / "p.json"),
            ]
        else:
            arguments = [command, "--config", str(config), "--checkpoint", str(checkpoint)]
        code = main(arguments)
        err = capsys.readouterr().err
        assert code == 2, (kind, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and checkpoint.name in err, (kind, err)
        assert "mmap" not in err and "Traceback" not in err, (kind, err)
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "runs").exists()


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.ckpt"
    assert main(["predict", "--checkpoint", str(missing), str(tmp_path), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")


def _heads_of_three_labels(checkpoint: Path, target: Path) -> Path:
    """The checkpoint with heads for 3 labels while its header (and the data) name 4: weights of another model."""
    state = torch.load(checkpoint, weights_only=True)
    for name in ("clip_head.weight", "clip_head.bias", "frame_head.weight", "frame_head.bias"):
        state["state_dict"][f"model.{name}"] = state["state_dict"][f"model.{name}"][:3]
    torch.save(state, target)
    return target


@pytest.mark.parametrize("command", ["predict", "validate", "fit"])
def test_weights_that_do_not_fit_their_config_are_one_checkpoint_error(
    command: str, tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _heads_of_three_labels(tiny_checkpoint, tmp_path / "heads.ckpt")
    if command == "predict":
        arguments = ["predict", "--checkpoint", str(bad), str(tiny_manifest), "--out", str(tmp_path / "p.json")]
    else:
        arguments = [command, "--config", str(_config(tmp_path, tiny_manifest)), "--checkpoint", str(bad)]
    code = main(arguments)
    err = capsys.readouterr().err
    line = err.splitlines()[-1]  # after vidfit's log lines, if any
    assert code == 2 and err.count("error: ") == 1 and "Traceback" not in err, err
    assert line.startswith(f"error: {'--' if command == 'fit' else ''}checkpoint='{bad}': its weights do not fit"), err
    assert "clip_head.weight (3, 64)!=(4, 64)" in line and len(line) < 500 and "bug" not in err, err
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "runs").exists()


def test_weights_of_another_backbone_are_one_checkpoint_error(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["hyper_parameters"]["config"]["model"]["backbone"] = "r3d_18"  # the weights stay the tiny one's
    bad = tmp_path / "backbone.ckpt"
    torch.save(state, bad)
    assert main(["predict", "--checkpoint", str(bad), str(tiny_manifest), "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint='{bad}': its weights do not fit the model its config describes: "), err
    assert "missing keys: rgb.backbone.net.layer1" in err and "(120 in all)" in err and len(err) < 1500, err


@pytest.mark.parametrize("kind", ["whole network", "zip bomb"])
def test_a_bad_pretrained_path_is_one_error_line(
    kind: str, tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidfit.models import build_backbone

    weights = tmp_path / "weights.pt"
    if kind == "zip bomb":
        checkpoint_bomb(weights, declared_bytes=2 << 30)
    else:
        torch.save(build_backbone(name="tiny").net, weights)
    config = _config(tmp_path, tiny_manifest)
    assert main(["fit", "--config", str(config), "--set", f"model.pretrained_path={weights}"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"error: pretrained_path='{weights}': ") and err.count("error: ") == 1, err
    assert "weights_only` set to `False`" not in err and "bug" not in err, err


def test_info_failures_are_error_lines_and_a_piped_table_is_not_folded(
    make_video: MakeVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, _ = make_video(f"{'a_long_name_' * 12}.mkv", num_frames=3)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    assert main(["info", str(tmp_path / "missing.mp4"), str(text), str(good)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"error: {tmp_path / 'missing.mp4'}: no such video file",
        f"error: {text}: cannot open as a video: " + err.splitlines()[1].split(": cannot open as a video: ")[1],
    ], err
    assert any(str(good) in line for line in out.splitlines()), out  # one line, though longer than 80 columns
    assert main(["info", str(tmp_path / "missing.mp4")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, (out, err)


def _one_video_manifest(folder: Path, video: Path) -> Path:
    manifest = folder / "manifest.json"
    entry = {"id": "v0", "views": {"front": video.name}}
    manifest.write_text(json.dumps({"labels": [], "root": ".", "videos": [entry]}), encoding="utf-8")
    return manifest


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 128 KiB tmpfs, for a real full disk; skipped where mounting is not allowed."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("fault", ["corrupt input", "full disk"])
def test_prepare_failures_of_the_users_files_are_one_error_line(
    fault: str, make_video: MakeVideo, tmp_path: Path, request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    video, _ = make_video("clip.mkv", num_frames=90, height=64, width=64)
    if fault == "full disk":  # noise: copies that no encoder fits in 128 KiB
        noise = torch.randint(0, 256, (30, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        write_video(video, noise, fps=30.0, codec="libx264rgb", crf=0)
    if fault == "corrupt input":
        data = bytearray(video.read_bytes())
        data[len(data) * 2 // 5 : len(data) * 3 // 5] = bytes(len(data) // 5)
        video.write_bytes(bytes(data))
        out = tmp_path / "out"
    else:
        out = request.getfixturevalue("small_tmpfs") / "out"
    manifest = _one_video_manifest(tmp_path, video)
    code = main(["prepare", str(manifest), "--size", "256", "256", "--gop", "1", "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    reason = "No space left on device" if fault == "full disk" else "the stream breaks at frame"
    last = err.rstrip("\n").splitlines()[-1]  # after vidfit's log lines (chunking)
    assert code == 2 and err.count("error: ") == 1 and "Traceback" not in err, err
    copy = out / "videos" / "v0" / "front.mp4"
    assert last.startswith(f"error: {video}: transcoding to {copy} failed: {reason}"), err
    assert "bug" not in err and not [p.name for p in out.rglob(".*")] and not (out / "manifest.json").exists()
