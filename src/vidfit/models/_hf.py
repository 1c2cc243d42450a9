"""Hugging Face video encoders as backbones: finding a model on disk, its config, input sizes and normalization.

``backbone="hf:<model id or local folder>"`` names the vision encoder of a `transformers` video model
(VideoMAE, V-JEPA 2, TimeSformer, ViViT). vidfit reads models from disk only: a local folder holding
``config.json`` (as ``save_pretrained`` writes it), else the Hugging Face cache (``huggingface_hub``'s
``HF_HUB_CACHE``). It never downloads, so a run behaves the same on a machine without a network; a model
that is in neither place is one error naming the id, the cache folder and the ``hf download`` command that
fills it. `transformers` (and `peft`, for LoRA) are the ``vidfit[hf]`` extra, imported when first needed.
"""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from vidfit.models._backbones import InputConstraints
from vidfit.models._hf_tokens import FAMILIES, Family

HF_PREFIX = "hf:"
INSTALL_HINT = "pip install 'vidfit[hf]'"
# The processor files that hold a model's input statistics, in the order they are looked for.
_PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")


class HfModelUnavailableError(FileNotFoundError):
    """An ``hf:`` backbone that is neither a local folder nor in the Hugging Face cache, or cannot be read."""


class HfExtraMissingError(ImportError):
    """`transformers` or `peft` is not installed."""


def is_hf_backbone(name: object) -> bool:
    """Whether `name` names a Hugging Face encoder (``hf:<id or folder>``)."""
    return isinstance(name, str) and name.startswith(HF_PREFIX)


def import_extra(module: str, *, needed_for: str) -> ModuleType:
    """Imports `module` of the ``hf`` extra, or raises one error naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise HfExtraMissingError(f"{needed_for} needs the {module.split('.')[0]!r} package: {INSTALL_HINT}") from error


@dataclass(frozen=True)
class HfModel:
    """A Hugging Face model found on disk.

    Attributes:
        name: The backbone as configured, ``hf:...``.
        folder: The folder holding its ``config.json`` (the local folder, or the cache's snapshot).
        config: Its `transformers` config.
        family: How vidfit runs its encoder (`vidfit.models._hf_tokens.FAMILIES`).
    """

    name: str
    folder: Path
    config: Any
    family: Family


def hf_model(name: str) -> HfModel:
    """Finds the ``hf:`` backbone `name` on disk and reads its config (cached per folder).

    Raises:
        HfExtraMissingError: `transformers` is not installed.
        HfModelUnavailableError: Not a local folder nor in the cache (naming the id, the cache and the command
            that fills it), or a folder without a readable ``config.json``.
        ValueError: A model type vidfit cannot run as a backbone.
    """
    folder = _find_folder(name)
    config = _read_config(str(folder))
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise ValueError(
            f"backbone={name!r} is a {config.model_type!r} model; hf: backbones are the encoders of "
            f"{', '.join(map(repr, FAMILIES))} models"
        )
    if problem := family.config_problem(config):
        raise ValueError(f"backbone={name!r}: {problem}")
    return HfModel(name=name, folder=folder, config=config, family=family)


def hf_problems(name: str, *, prefix: str = "") -> list[str]:
    """What stops `name` from being built as a backbone (extra missing, model not on disk...); empty when nothing."""
    try:
        hf_model(name)
    except (HfExtraMissingError, HfModelUnavailableError, ValueError) as error:
        return [f"{prefix}{error}"]
    return []


def hf_constraints(name: str) -> InputConstraints:
    """The clip sizes the encoder `name` takes, from its config (before any weights are read)."""
    model = hf_model(name)
    return model.family.constraints(model.config)


def hf_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std (per RGB channel, of [0, 1] values) the encoder's own processor normalizes with.

    Read from the model's processor file; without one, the defaults of its `transformers` video processor.
    A processor that rescales by another factor than 1/255, or shifts (ViViT's ``offset``: x / 127.5 - 1), is
    turned into the same affine map on [0, 1] values, so the encoder sees exactly what its processor makes.
    """
    model = hf_model(name)
    settings = _processor_settings(model)
    mean, std = _triple(settings["image_mean"]), _triple(settings["image_std"])
    scale = 255.0 * float(settings["rescale_factor"]) if settings.get("do_rescale", True) else 1.0
    shift = -1.0 if settings.get("offset", model.family.offset) else 0.0
    return tuple((m - shift) / scale for m in mean), tuple(s / scale for s in std)


def _processor_settings(model: HfModel) -> dict[str, Any]:
    processor = getattr(import_extra("transformers", needed_for=model.name), model.family.processor)
    defaults = {key: getattr(processor, key) for key in ("image_mean", "image_std", "rescale_factor", "do_rescale")}
    for file in _PROCESSOR_FILES:
        path = model.folder / file
        if path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise HfModelUnavailableError(f"backbone={model.name!r}: cannot read {path}: {error}") from error
            return defaults | {key: value for key, value in saved.items() if value is not None}
    return defaults


def _triple(value: float | list[float]) -> tuple[float, float, float]:
    values = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != 3:
        raise ValueError(f"a processor's image_mean and image_std need one value per RGB channel, got {value!r}")
    return values[0], values[1], values[2]


def _find_folder(name: str) -> Path:
    """The local folder `name` names, else the cache snapshot holding its ``config.json``."""
    ident = name.removeprefix(HF_PREFIX).strip()
    where = f"backbone={name!r}"
    if not ident:
        raise HfModelUnavailableError(f"{where}: name a model after 'hf:', e.g. hf:MCG-NJU/videomae-base")
    local = Path(ident).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise HfModelUnavailableError(
                f"{where}: the folder {local} holds no config.json (save_pretrained writes it)"
            )
        return local.resolve()
    if ident.startswith(("/", ".", "~")) or ident.count("/") > 1 or "\\" in ident:
        raise HfModelUnavailableError(f"{where}: no such folder {local} (a Hugging Face model id is 'org/name')")
    hub = import_extra("huggingface_hub", needed_for=where)
    cache = Path(hub.constants.HF_HUB_CACHE)
    try:
        found = hub.try_to_load_from_cache(ident, "config.json", cache_dir=cache)
    except ValueError:  # not a repository id: a folder that does not exist
        found = None
    if isinstance(found, str):
        return Path(found).parent
    raise HfModelUnavailableError(
        f"{where} is not a local folder and not in the Hugging Face cache ({cache}); vidfit reads models from "
        f"disk only: fill the cache with `hf download {ident}` (huggingface_hub's CLI; or set HF_HUB_CACHE to "
        "the cache that holds it), or name the folder save_pretrained wrote"
    )


@functools.lru_cache(maxsize=32)
def _read_config(folder: str) -> Any:
    transformers = import_extra("transformers", needed_for=f"backbone='hf:{folder}'")
    try:
        return transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise HfModelUnavailableError(f"cannot read the model config in {folder}: {error}") from error
