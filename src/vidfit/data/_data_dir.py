"""The dataset as the training scripts vidfit replaces gave it: a data folder and a JSON settings file.

``VideoDatasetConfig(data_dir="data", config_path="configs/config_example.json", image_size=160)``: the
folder's own manifest when it has one, else its class folders (``data/<class>/<video>`` or
``data/<split>/<class>/<video>``); the file's ``dataset`` (or ``data``) section fills the settings
left at their defaults.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from vidfit.data._import_formats import import_video_folders
from vidfit.data._manifest import Manifest, load_manifest
from vidfit.io import DocumentForm, DocumentLimits, read_document

_LOG = logging.getLogger("vidfit")
_MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.json")
_SECTIONS = ("dataset", "data")
# Keys of the file that the dataset does not take: where they belong instead.
_ELSEWHERE = ("manifest", "data_dir", "config_path", "transform")
# A settings file is a few keys: its size, nesting and aliases are bounded as a config's are.
_SETTINGS_LIMITS = DocumentLimits(max_bytes=1 << 20, max_depth=32, max_nodes=100_000)


def data_dir_manifest(data_dir: str | os.PathLike[str], *, allow_outside_root: bool = False) -> Manifest:
    """The manifest of a data folder: its ``manifest.yaml``/``.yml``/``.json``, else its class-folder tree."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data_dir is not a folder")
    for name in _MANIFEST_NAMES:
        if (folder / name).is_file():
            return load_manifest(folder / name, allow_outside_root=allow_outside_root)
    return import_video_folders(folder).manifest


def settings_file_values(config: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings of `path`'s dataset section for the fields of `config` still at their defaults.

    Keys the dataset does not take (a DataLoader's ``batch_size``, ...) are left for their owners, with a
    notice naming them.
    """
    source = Path(path)
    form: DocumentForm = "json" if source.suffix.lower() == ".json" else "yaml"
    try:
        document = read_document(source, form=form, source=f"{source}: config_path", limits=_SETTINGS_LIMITS)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{source}: config_path: no such file") from error
    if not isinstance(document, dict):
        raise ValueError(f"{source}: config_path: expected a mapping of settings, got {type(document).__name__}")
    section = next((document[name] for name in _SECTIONS if isinstance(document.get(name), dict)), document)
    fields = {f.name: f for f in dataclasses.fields(config) if f.init and f.name not in _ELSEWHERE}
    unused = sorted(key for key in section if key not in fields)
    if unused:
        _LOG.info("%s: the dataset does not take %s; those settings are left to the loader and trainer", source, unused)
    return {key: value for key, value in section.items() if key in fields and _at_default(config, fields[key])}


def _at_default(config: Any, field: dataclasses.Field[Any]) -> bool:
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    return bool(getattr(config, field.name) == default)
