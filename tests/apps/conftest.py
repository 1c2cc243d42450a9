"""A Ray cluster on this machine for the tests of the ray engine: started once, 2 CPUs, shut down after."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """Ray, initialized for the tests of one module; the engine joins it rather than starting its own (starting
    one costs seconds). Shut down after them: Ray's threads in the test process would deadlock the children that
    later tests fork (a DataLoader's workers)."""
    ray = pytest.importorskip("ray")
    # The tests' own functions travel by value: Ray's workers do not import the tests package.
    for name in ("tests.apps.test_prepare", "tests.apps.test_predict"):
        if name in sys.modules:
            ray.cloudpickle.register_pickle_by_value(sys.modules[name])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) by its path relative to it: what a run left there."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
