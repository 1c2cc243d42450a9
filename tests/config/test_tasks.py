"""The task registry: installed tasks found through their entry points, broken ones named and left out, blame."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins import fresh_registry, install_plugin
from vidfit.config import (
    ConfigError,
    DataConfig,
    TaskPluginWarning,
    TaskSpec,
    TrainConfig,
    _tasks,
    blame_task,
    get_task,
    load_config,
    task_names,
)

# A task module as a plugin package writes it; `{name}` is the name it registers.
TASK_SOURCE = """
from dataclasses import dataclass

from vidfit.config import DataConfig, TaskSpec, TrainConfig, register_task


@dataclass
class Model:
    width: int = 1


def data_and_module(config, *, checkpoint, load):
    raise NotImplementedError


def predict(checkpoint, inputs, *, out="x.json", overrides, split, progress, engine, shard):
    raise RuntimeError("the plugin's own bug")


TASK = TaskSpec(
    name="{name}", model_section=Model, data_section=DataConfig, train_section=TrainConfig, monitors=("val/loss",),
    data_and_module=data_and_module, predict=predict,
)
{register}
"""


def _task_source(name: str, *, register: bool = True) -> str:
    return TASK_SOURCE.format(name=name, register="register_task(TASK)" if register else "")


def test_an_installed_task_is_found_through_its_entry_point(tmp_path: Path) -> None:
    install_plugin(
        tmp_path, distribution="vidfit-toy", module="vidfit_toy", source=_task_source("toy"),
        entry_point="toy = vidfit_toy",
    )  # fmt: skip
    with fresh_registry(tmp_path):
        assert {"action", "super_resolution", "toy"} <= set(task_names())
        assert get_task("toy").model_section.__module__ == "vidfit_toy"


def test_an_entry_point_may_name_the_task_spec_itself(tmp_path: Path) -> None:
    install_plugin(
        tmp_path, distribution="vidfit-toy", module="vidfit_toy", source=_task_source("toy", register=False),
        entry_point="toy = vidfit_toy:TASK",
    )  # fmt: skip
    with fresh_registry(tmp_path):
        assert get_task("toy").name == "toy"


def test_a_plugin_that_fails_to_import_is_named_once_and_the_other_tasks_work(tmp_path: Path) -> None:
    install_plugin(
        tmp_path, distribution="vidfit-broken", module="vidfit_broken", source="import vidfit_no_such_module\n",
        entry_point="broken = vidfit_broken",
    )  # fmt: skip
    with fresh_registry(tmp_path), pytest.warns(TaskPluginWarning) as caught:
        names = task_names()
        assert get_task("action").name == "action"
        with pytest.raises(ConfigError, match=r"x\.yaml: experiment\.task='broken': its package is installed but did"):
            get_task("broken", key="x.yaml: experiment.task")
        task_names()  # discovery is not repeated: one warning
    assert {"action", "super_resolution"} <= set(names) and "broken" not in names
    assert [str(w.message) for w in caught] == [
        "task 'broken' of the package vidfit-broken 0.1.0 (entry point 'broken = vidfit_broken') is not loaded: "
        "ModuleNotFoundError: No module named 'vidfit_no_such_module'; the other tasks work (fix or uninstall "
        "vidfit-broken)"
    ]


def test_a_plugin_registering_another_name_than_its_entry_point_is_refused(tmp_path: Path) -> None:
    install_plugin(
        tmp_path, distribution="vidfit-misnamed", module="vidfit_misnamed", source=_task_source("motion2"),
        entry_point="motion = vidfit_misnamed",
    )  # fmt: skip
    with fresh_registry(tmp_path):
        with pytest.warns(TaskPluginWarning, match=r"its module registers 'motion2', where the entry point's name "):
            names = task_names()
        assert "motion2" not in names and "motion" not in names  # nothing of it stays registered
        with pytest.raises(ConfigError, match=r"'motion': its package is installed but did not load: ValueError"):
            get_task("motion")


def test_a_plugin_taking_a_builtin_name_is_refused(tmp_path: Path) -> None:
    install_plugin(
        tmp_path, distribution="vidfit-clash", module="vidfit_clash", source=_task_source("action"),
        entry_point="action = vidfit_clash",
    )  # fmt: skip
    with fresh_registry(tmp_path):
        with pytest.warns(TaskPluginWarning, match=r"ValueError: task 'action' is already registered"):
            task_names()
        assert get_task("action").model_section.__module__ == "vidfit.tasks.action._config"


def test_a_missing_task_names_the_config_file_and_the_install_it_needs(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("experiment:\n  task: motion\n", encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=rf"^{config}: experiment\.task='motion' is not one of 'action', 'super_resolution', 'temporal': "
        r"a task of another package is found once that package is installed in this Python environment "
        r"\(pip install it",
    ):
        load_config(config)
    with pytest.raises(ConfigError, match=rf"^{config}: experiment\.task='motion' is not one of"):
        load_config(tmp_path / "run.yaml", ["experiment.task=motion"])


def test_a_builtin_task_that_fails_to_import_fails_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry is never left half-built behind a silent success."""
    monkeypatch.setattr(_tasks, "_BUILTIN_MODULES", ("vidfit.tasks.action", "vidfit.tasks.no_such_task"))
    monkeypatch.setattr(_tasks, "_state", "new")
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError, match=r"vidfit\.tasks\.no_such_task"):
            task_names()


def test_errors_raised_in_a_plugins_code_are_blamed_on_it(tmp_path: Path) -> None:
    install_plugin(
        tmp_path, distribution="vidfit-toy", module="vidfit_toy", source=_task_source("toy"),
        entry_point="toy = vidfit_toy",
    )  # fmt: skip
    with fresh_registry(tmp_path):
        spec = get_task("toy")
        with pytest.raises(RuntimeError) as raised:
            spec.predict(None, [], overrides=(), split=None, progress=False, engine=None, shard=None)  # type: ignore[arg-type]
        origin = blame_task(raised.value)
        assert origin is not None and str(origin) == (
            "task 'toy' of the package vidfit-toy 0.1.0 (entry point 'toy = vidfit_toy')"
        )
        try:  # vidfit's own error, raised while handling the plugin's: still the plugin's doing
            raise ValueError("wrapped") from raised.value
        except ValueError as wrapped:
            assert blame_task(wrapped) == origin
        with pytest.raises(ConfigError) as ours:
            get_task("nope")
        assert blame_task(ours.value) is None


def test_predict_options_must_be_keywords_of_predict() -> None:
    def predict(checkpoint: object, inputs: object, *, codec: str = "x") -> None: ...

    common = {"model_section": object, "data_section": DataConfig, "train_section": TrainConfig, "monitors": ("m",)}
    TaskSpec(name="a", data_and_module=None, predict=predict, predict_options=("codec",), **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"task 'b': predict_options \['level'\] are not keyword parameters"):
        TaskSpec(name="b", data_and_module=None, predict=predict, predict_options=("level",), **common)  # type: ignore[arg-type]
