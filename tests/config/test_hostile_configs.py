"""Configs that fail the README's promise unless checked: every problem in one pass, sane bounds, YAML bombs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.yamlbomb import alias_bomb, deep_json, deep_yaml, views_list
from vidfit.cli import main
from vidfit.config import ConfigError, config_from_dict, load_config
from vidfit.data import load_manifest

M = "data.manifest=m.yaml"


def _problems(error: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return str(error.value).split(": ", 1)[1].split("; ")


def test_every_problem_of_every_section_in_one_pass() -> None:
    document = {
        "data": {
            "manifest": "m", "num_frames": -1, "frame_stride": -2, "max_open_readers": -1, "image_size": -5,
            "num_threads": -1, "num_workers": -1, "sync_tolerance_seconds": -1, "chunk_overlap_frames": -1,
            "batch_size": -3, "bogus": 1,
        },
        "train": {"lr": "fast"},
        "model": {"backbone": "resnet999"},
    }  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        config_from_dict(document, source="run.yaml")
    problems = _problems(raised)
    expected = [
        # The eight negative values: the dataset's own check, the data rules, then the rules between sections.
        "data.num_frames=-1", "data.frame_stride=-2", "data.max_open_readers=-1", "data.image_size=-5",
        "data.num_threads=-1", "data.num_workers=-1", "data.sync_tolerance_seconds=-1.0",
        "data.chunk_overlap_frames=-1",
        "data.bogus: unknown key", "train.lr='fast' must be float", "data.batch_size=-3 must be >= 1",
        "model.backbone='resnet999' is not one of",
    ]  # fmt: skip
    for start in expected:
        assert sum(problem.startswith(start) for problem in problems) == 1, (start, problems)
    assert len(problems) == len(expected), problems


def test_a_rule_about_a_bad_value_is_not_reported_twice() -> None:
    # input_type is bad, so the rule "model.input_type=... needs data.load_kpt" is not run on its default.
    with pytest.raises(ConfigError) as raised:
        load_config(None, [M, "model.input_type=pose", "data.load_rgb=false"])
    assert _problems(raised) == ["model.input_type='pose' is not one of 'rgb', 'kpt', 'rgb_kpt'"]


def test_a_section_that_is_no_mapping_is_one_problem_among_the_others() -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"data": {"manifest": "m", "batch_size": 0}, "train": [1, 2]}, source="run.yaml")
    assert _problems(raised) == [
        "section 'train' must be a mapping of keys, got [1, 2]",
        "data.batch_size=0 must be >= 1",
    ]


@pytest.mark.parametrize(
    ("data", "first"),
    [({"batch_size": -3}, "data.manifest is required"), ({"manifest": [1], "batch_size": -3}, "data.manifest=[1]")],
)
def test_a_missing_or_bad_manifest_does_not_hide_the_other_problems(data: dict, first: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"data": data}, source="run.yaml")
    problems = _problems(raised)
    assert len(problems) == 2 and problems[0].startswith(first), problems
    assert problems[1] == "data.batch_size=-3 must be >= 1"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.batch_size=1000000000000"], r"data\.batch_size=1000000000000 must be <= 4096"),
        (["data.num_frames=1000000000"], r"data\.num_frames=1000000000 must be >= 1 and <= 4096"),
        (["data.image_size=100000"], r"data\.image_size=100000 must be \(height, width\) of positive integers up to"),
        (["data.image_size=[720, 100000]"], r"data\.image_size=\(720, 100000\) must be"),
        (["trainer.max_epochs=1000000000000"], r"trainer\.max_epochs=1000000000000 must be <= 1000000"),
        (["data.max_video_frames=10000000000"], r"data\.max_video_frames=10000000000 must be >= 1 and <= 1000000"),
        (["data.views=[a, b]", "data.frame_stride=5000"], r"data\.frame_stride=5000 must be >= 1 and <= 1000"),
        (["train.accumulate_grad_batches=100000000"], r"train\.accumulate_grad_batches=100000000 must be <= 65536"),
    ],
)
def test_sizes_beyond_any_machine_are_refused_with_the_config(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [M, *overrides])


@pytest.mark.timeout(60)
def test_an_alias_bomb_is_one_short_error_line_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text(alias_bomb(key="data"), encoding="utf-8")  # `data:` a billion strings
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and len(err) < 300, err[:1000]
    assert "expands to more than 100,000 values" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("deep.yaml", deep_yaml(100_000), r"cannot read the config: nested deeper than 32 levels"),
        ("deep.json", deep_json(100_000), r"cannot read the config: nested deeper than 32 levels"),
        ("views.yaml", views_list(50 << 20), r"cannot read the config: more than the 1,048,576 bytes"),
        ("loop.yaml", "data: &a {manifest: m, augment: *a}\n", r"an alias refers to a value that holds it"),
    ],
)
def test_hostile_config_files_are_config_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(path)
    assert len(str(raised.value)) < 300


@pytest.mark.timeout(60)
def test_a_huge_views_list_is_bounded_and_quoted_short() -> None:
    views = [f"v{i:09d}" for i in range(4_000_000)]  # about 50 MB of names, from Python (no file size limit)
    with pytest.raises(
        ConfigError, match=r"data\.views=\('v000000000', .*\.\.\.\) must name 1 to 1024 views"
    ) as raised:
        config_from_dict({"data": {"manifest": "m", "views": views}})
    assert len(str(raised.value)) < 300
    with pytest.raises(ConfigError, match=r"train\.lr=\[\[\[\[\.\.\.\]") as raised:
        config_from_dict({"data": {"manifest": "m"}, "train": {"lr": [[[[[["deep"] * 10**6]]]]]}})
    assert len(str(raised.value)) < 300


def test_thousands_of_problems_are_counted_after_the_first_twenty() -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"data": {"manifest": "m", **{f"key{i}": i for i in range(5000)}}}, source="run.yaml")
    message = str(raised.value)
    assert message.count("unknown key") == 20 and message.endswith("; and 4,980 more problems")


@pytest.mark.timeout(60)
def test_a_hostile_manifest_fails_in_one_short_line(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("labels: [a]\nroot: .\n" + alias_bomb(levels=12, key="videos"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"expands to more than 20,000,000 values") as raised:
        load_manifest(bomb)
    assert len(str(raised.value)) < 300
    views = {f"cam{i}": f"cam{i}.mp4" for i in range(2000)}
    many = tmp_path / "many.json"
    many.write_text(
        '{"labels": ["a"], "root": ".", "videos": [{"id": "v", "views": ' + str(views).replace("'", '"') + "}]}"
    )
    with pytest.raises(ValueError, match=r"video 'v': .*views: names 2,000 views, more than the 1024 allowed"):
        load_manifest(many)
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as file:  # sparse: 300 MB long, nothing written
        file.truncate(300 << 20)
    with pytest.raises(ValueError, match=r"huge\.yaml: a manifest of more than 268,435,456 bytes"):
        load_manifest(huge)


def test_an_error_line_is_bounded_however_long_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", "a" * 200_000 + ".yaml"]) == 2  # the path is in the message
    err = capsys.readouterr().err
    assert err.startswith("error: aaa") and err.count("\n") == 1 and len(err) < 100_100
    assert err.endswith(" more characters)\n")
