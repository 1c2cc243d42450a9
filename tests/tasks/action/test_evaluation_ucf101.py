"""A UCF101-layout dataset from import to predict on the command line: video-level top-1/top-5, no frame figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from vidfit.cli import main
from vidfit.io import write_video

CLASSES = ("ApplyEyeMakeup", "Archery", "Basketball", "Biking", "Bowling")


def _ucf101(root: Path) -> tuple[Path, Path]:
    """``UCF-101/<Class>/v_<Class>_gNN_c01.avi`` (one colour per class) and ``ucfTrainTestlist`` of fold 1."""
    videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    train, test = [], []
    for number, name in enumerate(CLASSES, start=1):
        for group in (1, 2, 8):
            frames = torch.zeros(8, 3, 24, 32, dtype=torch.uint8)
            frames[:, number % 3] = 40 * number
            frames[:, :, :, group : group + 4] = 255  # a bar that moves with the group
            clip = f"{name}/v_{name}_g{group:02d}_c01.avi"
            write_video(videos / clip, frames, fps=8.0, bframes=0)  # AVI cannot stamp B-frames
            (test if group == 8 else train).append(clip if group == 8 else f"{clip} {number}")
    (lists / "classInd.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(CLASSES, start=1)))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return videos, lists


@pytest.mark.slow
def test_ucf101_import_prepare_fit_validate_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos, lists = _ucf101(tmp_path)
    manifest = tmp_path / "ucf101.yaml"
    argv = ["import", "ucf101", str(videos), "--splits", str(lists), "--fold", "1", "--out", str(manifest)]
    assert main(argv) == 0
    prepare = ["prepare", str(manifest), "--size", "32", "32", "--gop", "4", "--out", str(tmp_path / "prepared")]
    assert main([*prepare, "--workers", "1"]) == 0
    prepared = capsys.readouterr().out.split("prepared manifest: ")[1].strip()
    config = tmp_path / "ucf101_tiny.yaml"
    settings = {
        "experiment": {"output_dir": str(tmp_path / "runs")},
        "model": {"backbone": "tiny"},
        # UCF101 has a train and a test list: the test list validates.
        "data": {"manifest": prepared, "num_frames": 4, "batch_size": 5, "num_workers": 0, "val_split": "test"},
        "trainer": {"max_steps": 2, "max_epochs": 1, "enable_progress_bar": False, "log_every_n_steps": 1},
    }
    config.write_text(json.dumps(settings))  # JSON is YAML
    assert main(["fit", "--config", str(config)]) == 0
    checkpoint = re.search(r"best checkpoint: (\S+) \(", capsys.readouterr().out)
    assert checkpoint is not None
    assert main(["validate", "--config", str(config), "--checkpoint", checkpoint[1]]) == 0
    scores = json.loads(capsys.readouterr().out)
    # Clip labels only: video-level figures, no frame figure (the frame head never trained).
    assert set(scores) == {"val/loss", "val/acc", "val/top1", "val/top5", "val/mean_class_acc"}
    out = tmp_path / "predictions.json"
    arguments = ["predict", prepared, "--checkpoint", checkpoint[1], "--split", "test", "--out", str(out)]
    assert main(arguments) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("5 videos -> ") for line in printed)
    figures = [line for line in printed if line.startswith(("videos:", "frames:", "detection"))]
    assert len(figures) == 1  # no frame figure
    top1, top5, mean = (float(x) for x in re.findall(r"\d\.\d{3}", figures[0]))
    assert (
        figures[0] == f"videos: top-1 {top1:.3f}, top-5 {top5:.3f}, mean class accuracy {mean:.3f} (5 labelled videos)"
    )
    assert (top1, top5, mean) == tuple(
        pytest.approx(scores[f"val/{name}"], abs=5e-4) for name in ("top1", "top5", "mean_class_acc")
    )
    assert top5 == 1.0  # five classes: the true one is always among the five
