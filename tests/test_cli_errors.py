"""Every expected failure of a command is one `error:` line and exit 2, never a traceback (unless --debug)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_overrides
from vidfit.cli import main


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
    }
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
