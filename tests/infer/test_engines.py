"""Engines and shards: choices checked first, the local engine as `run_jobs`, shards deterministic and whole."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vidfit.infer._engines import Engine, Work
from vidfit.infer._shards import Shard


def _double(offset: int, job: int) -> int:
    if job == 3:
        raise ValueError("three is refused")
    return offset + 2 * job


def _offset() -> int:
    return 100


def test_the_local_engine_loads_once_and_keeps_each_failure_to_its_job() -> None:
    work = Work(_double, key=str, description="doubling", load=_offset)
    results, failures = Engine().run([1, 3, 2], work, progress=False)
    assert list(results.items()) == [("1", 102), ("2", 104)]
    assert failures == {"3": "ValueError: three is refused"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "spark"}, r"engine='spark' is not one of 'local', 'ray'"),
        ({"name": "local", "ray_address": "auto"}, r"ray_address='auto' needs engine='ray'"),
        ({"name": "ray", "num_gpus_per_actor": -1}, r"num_gpus_per_actor=-1 must be >= 0"),
    ],
)
def test_engine_choices_are_checked_first(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Engine(**options)


def test_without_ray_the_ray_engine_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what find_spec reports for a module that is not installed
    with pytest.raises(
        ValueError, match=r"engine='ray' needs Ray, which is not installed: pip install 'vidfit\[ray\]'"
    ):
        Engine("ray")


def test_importing_vidfit_does_not_import_ray() -> None:
    code = "import sys, vidfit, vidfit.cli, vidfit.apps, vidfit.infer; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shards_split_sorted_ids_whatever_their_order() -> None:
    ids = [f"v{i}" for i in (4, 0, 3, 1, 2)]
    shards = [Shard.parse(f"{i}/2") for i in range(2)]
    assert [sorted(s.video_ids(ids)) for s in shards] == [["v0", "v2", "v4"], ["v1", "v3"]]
    assert shards[1].video_ids(list(reversed(ids))) == shards[1].video_ids(ids)
    assert str(shards[1]) == "1/2" and shards[1].output_path("out/p.json").as_posix() == "out/p.shard-1-of-2.json"
    assert Shard(0, 4).video_ids(["only"]) == {"only"} and Shard(3, 4).video_ids(["only"]) == set()


@pytest.mark.parametrize(
    ("text", "message"),
    [("2/2", r"shard 2/2 must be i/N with N >= 1 and 0 <= i < N"), ("1of2", r"shard='1of2' must be i/N")],
)
def test_bad_shards_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Shard.parse(text)
