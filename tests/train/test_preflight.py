"""`fit` refuses a config whose smallest step cannot fit the machine, before any run folder, in one error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from tests.conftest import tiny_overrides
from vidfit.config import ConfigError, load_config
from vidfit.train import fit

HOST_BYTES = 256 << 20  # a small machine, so that the test's clips are too large for it


@pytest.fixture
def small_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=HOST_BYTES))


@pytest.mark.usefixtures("small_host")
def test_a_batch_beyond_host_memory_is_refused_before_a_run_folder(tiny_manifest: Path, tmp_path: Path) -> None:
    # 8 clips of 2 views x 16 frames of 512x512: 192 MiB a batch, two of them in memory at least.
    overrides = ["data.image_size=[512, 512]", "data.num_frames=16", "data.batch_size=8"]
    config = load_config(None, [*tiny_overrides(tiny_manifest, tmp_path), *overrides])
    message = (
        r"data\.num_frames=16, data\.image_size=\[512, 512\] \(frames of 512x512\), 2 views, data\.batch_size=8: "
        r"a batch takes 192\.00 MiB and 2 are in host memory at once .* 384\.00 MiB in all, more than the "
        r"256\.00 MiB of host RAM: lower data\.batch_size"
    )
    with pytest.raises(ConfigError, match=message):
        fit(config)
    assert not (tmp_path / "vidfit").exists()


@pytest.mark.usefixtures("small_host")
def test_one_clip_beyond_the_device_is_refused_with_the_keys_to_change(tiny_manifest: Path, tmp_path: Path) -> None:
    # One clip's uint8 frames fit (24 MiB); its training step, estimated on fake tensors (825 MiB), does not.
    overrides = ["data.image_size=[512, 512]", "data.num_frames=16", "data.batch_size=1", "trainer.accelerator=cpu"]
    config = load_config(None, [*tiny_overrides(tiny_manifest, tmp_path), *overrides])
    message = (
        r"data\.num_frames=16, data\.image_size=\[512, 512\] \(frames of 512x512\), 2 views: the training step of "
        r"one clip needs about .* \(estimate\), more than the 256\.00 MiB of host RAM: lower data\.num_frames \(16\) "
        r"or data\.image_size \(512x512\), or set model\.activation_checkpointing: true$"
    )
    with pytest.raises(ConfigError, match=message):
        fit(config)
    assert not (tmp_path / "vidfit").exists()
