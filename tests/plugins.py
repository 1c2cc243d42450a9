"""Task plugins installed for a test: a module and its ``.dist-info`` (with ``entry_points.txt``) in a site folder.

`install_plugin` writes what ``pip install --target`` would for a one-module package, without building it;
`fresh_registry` lets a test discover the tasks again (with the folder on ``sys.path``) and puts vidfit's
registry back afterwards.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidfit.config import _tasks


def install_plugin(
    site: Path, *, distribution: str, module: str, source: str, entry_point: str, version: str = "0.1.0"
) -> Path:
    """Writes `module` (`source`) and a distribution declaring ``entry_point`` (``name = value``) in `site`."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[vidfit.tasks]\n{entry_point}\n", encoding="utf-8")
    return site


@contextmanager
def fresh_registry(site: Path) -> Iterator[None]:
    """Tasks discovered anew with `site` on ``sys.path``; vidfit's registry and imported modules restored after."""
    _tasks.task_names()  # the built-in tasks registered first: their modules are imported once per process
    saved = (dict(_tasks._TASKS), dict(_tasks._ORIGINS), dict(_tasks._BROKEN), _tasks._state)
    modules = set(sys.modules)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    # The built-in tasks stay registered; installed ones go.
    for name in set(_tasks._ORIGINS):
        _tasks._TASKS.pop(name, None)
    _tasks._ORIGINS.clear()
    _tasks._BROKEN.clear()
    _tasks._state = "new"
    try:
        yield
    finally:
        sys.path.remove(str(site))
        for name in set(sys.modules) - modules:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(site)):
                del sys.modules[name]
        importlib.invalidate_caches()
        _tasks._TASKS.clear()
        _tasks._TASKS.update(saved[0])
        _tasks._ORIGINS.clear()
        _tasks._ORIGINS.update(saved[1])
        _tasks._BROKEN.clear()
        _tasks._BROKEN.update(saved[2])
        _tasks._state = saved[3]
