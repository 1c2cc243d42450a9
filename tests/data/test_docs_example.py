"""docs/DATA.md's opening example, run on a real loader: what it does with a batch works on a `VideoBatch`."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vidfit.data import VideoBatch, VideoDataset, VideoDatasetConfig, make_loader

DATA_MD = Path(__file__).parents[2] / "docs" / "DATA.md"


def test_the_loop_of_the_data_example_runs_on_a_batch(tiny_manifest: Path) -> None:
    example = re.search(r"```python\n(.*?)```", DATA_MD.read_text(encoding="utf-8"), re.DOTALL)
    assert example is not None
    lines = example.group(1).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("for batch in loader:"))
    body = [line.strip() for line in lines[start + 1 :] if line.startswith("    ")]
    assert body  # the loop does something with each batch
    config = VideoDatasetConfig(manifest=tiny_manifest, split="train", num_frames=4, views=("front", "left"))
    batch = next(iter(make_loader(VideoDataset(config), batch_size=2, shuffle=True, num_workers=0, seed=0)))
    assert isinstance(batch, VideoBatch)
    for line in body:
        value = eval(line.split("#")[0], {}, {"batch": batch})  # e.g. ``batch.video``
        assert isinstance(value, torch.Tensor) and len(value) == 2, line
