"""Keys that one LR scheduler alone reads choose it, or are an error naming train.scheduler: never silently inert."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vidfit.config import Config, ConfigError, config_from_dict, load_config, save_config
from vidfit.train._base import GuardedModule

FIXTURES = Path(__file__).parent / "fixtures"


def _learning_rates(config: Config, epochs: int) -> list[float]:
    """The learning rate of each epoch under the schedule training builds from `config`."""
    module = SimpleNamespace(config=config, parameters=lambda: [torch.nn.Parameter(torch.zeros(1))])
    built = GuardedModule.configure_optimizers(module)  # type: ignore[arg-type]
    rates = []
    for _ in range(epochs):
        rates.append(built["optimizer"].param_groups[0]["lr"])
        built["optimizer"].step()
        built["lr_scheduler"]["scheduler"].step()
    return rates


def test_note_004s_schedule_keys_select_the_multistep_schedule(caplog: pytest.LogCaptureFixture) -> None:
    # The note's config.py: model_lr 1e-2, lr_scheduler_milestones [300, 2400], lr_scheduler_gamma 0.1.
    with caplog.at_level(logging.INFO, logger="vidfit"):
        config = load_config(FIXTURES / "espcn_settings.yaml", ["data.manifest=m.yaml"])
    assert (config.train.scheduler, config.train.milestones, config.train.gamma) == ("multistep", [300, 2400], 0.1)
    notices = [record.getMessage() for record in caplog.records if record.name == "vidfit"]
    assert any("train.milestones given: train.scheduler is 'multistep'" in line for line in notices)
    rates = _learning_rates(config, 2401)
    assert [rates[i] for i in (299, 300, 2399, 2400)] == pytest.approx([1e-2, 1e-3, 1e-3, 1e-4])


def test_the_notes_faster_schedule_in_its_own_spelling(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("model_lr: 0.02\nlr_scheduler_milestones: [3]\nlr_scheduler_gamma: 0.05\nepochs: 6\n")
    config = load_config(path, ["data.manifest=m.yaml"])
    assert (config.train.scheduler, config.train.milestones, config.train.gamma) == ("multistep", [3], 0.05)
    assert _learning_rates(config, 5) == pytest.approx([0.02, 0.02, 0.02, 0.001, 0.001])


def test_schedule_keys_under_another_scheduler_are_one_error_naming_it() -> None:
    overrides = ["data.manifest=m.yaml", "train.scheduler=cosine", "data.batch_size=0"]
    with pytest.raises(ConfigError) as caught:
        load_config(FIXTURES / "espcn_settings.yaml", overrides)
    message = str(caught.value)
    assert message.count("\n") == 0 and "data.batch_size" in message  # every problem, in one line
    expected = (
        "train.milestones only apply to train.scheduler: multistep, but train.scheduler is 'cosine': "
        "set train.scheduler: multistep, or leave train.milestones out"
    )
    assert expected in message
    document = {"data": {"manifest": "/m.yaml"}, "train": {"scheduler": "none", "gamma": 0.5}}
    with pytest.raises(ConfigError, match=r"train\.gamma only apply to train\.scheduler: multistep, but .* 'none'"):
        config_from_dict(document)


def test_gamma_alone_selects_multistep_which_then_asks_for_milestones() -> None:
    with pytest.raises(ConfigError, match=r"train\.scheduler: multistep needs train\.milestones"):
        config_from_dict({"data": {"manifest": "/m.yaml"}, "train": {"gamma": 0.5}})


def test_a_saved_config_of_another_scheduler_loads_back(tmp_path: Path) -> None:
    # A saved config holds every key, the multistep ones at their defaults: they are not "given".
    for scheduler in ("cosine", "none"):
        config = config_from_dict({"data": {"manifest": "/m.yaml"}, "train": {"scheduler": scheduler}})
        assert load_config(save_config(config, tmp_path / f"{scheduler}.yaml")) == config
