"""Hostile YAML and JSON: alias bombs, deep nesting and huge documents fail at once, in a short message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.yamlbomb import alias_bomb, deep_json, deep_yaml
from vidfit.io import DocumentError, DocumentLimits, load_document, read_document, shorten

LIMITS = DocumentLimits(max_bytes=1 << 20, max_depth=32, max_nodes=100_000)


@pytest.mark.timeout(30)
def test_an_alias_bomb_is_refused_before_its_value_is_walked() -> None:
    bomb = alias_bomb()  # a billion strings in a few hundred bytes
    assert len(bomb) < 400
    with pytest.raises(DocumentError, match=r"^bomb\.yaml: expands to more than 100,000 values \(aliases") as raised:
        load_document(bomb, form="yaml", source="bomb.yaml", limits=LIMITS)
    assert len(str(raised.value)) < 200


@pytest.mark.timeout(30)
def test_aliases_within_the_limit_load_as_pyyaml_loads_them() -> None:
    text = "base: &base {lr: 0.1, epochs: 3}\nruns: [*base, *base]\n" + alias_bomb(levels=3, width=4, key="small")
    assert load_document(text, form="yaml", source="ok.yaml", limits=LIMITS) == yaml.safe_load(text)


def test_an_alias_of_a_value_that_holds_it_is_refused() -> None:
    with pytest.raises(DocumentError, match=r"an alias refers to a value that holds it \(line 1\)"):
        load_document("a: &a [1, *a]\n", form="yaml", source="loop.yaml", limits=LIMITS)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("form", "text"),
    [
        ("yaml", deep_yaml(50_000)),
        ("yaml", "".join("  " * i + f"k{i}:\n" for i in range(200))),
        ("json", deep_json(50_000)),
        ("json5", deep_json(50_000)),
        ("json", deep_json(40)),  # parses; its depth is checked after
    ],
)
def test_deep_nesting_is_refused_without_recursion_errors(form: str, text: str) -> None:
    with pytest.raises(DocumentError, match=r"^deep: nested deeper than 32 levels"):
        load_document(text, form=form, source="deep", limits=LIMITS)  # type: ignore[arg-type]


def test_a_document_over_its_size_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^big\.yaml: 1,048,577 bytes is more than the 1,048,576"):
        load_document("#" * (1 << 20) + "\n", form="yaml", source="big.yaml", limits=LIMITS)
    endless = Path("/dev/zero")  # never ends: only max_bytes + 1 of it may be read
    with pytest.raises(DocumentError, match=r"more than the 1,048,576 bytes a YAML document may have"):
        read_document(endless, form="yaml", source="zero", limits=LIMITS)
    text = tmp_path / "latin1.yaml"
    text.write_bytes(b"a: \xe9\n")
    with pytest.raises(DocumentError, match=r"not UTF-8 text \(byte 3\)"):
        read_document(text, form="yaml", source="latin1.yaml", limits=LIMITS)


def test_invalid_documents_name_the_source() -> None:
    with pytest.raises(DocumentError, match=r"^x\.yaml: not valid YAML"):
        load_document("a: [1, 2\n", form="yaml", source="x.yaml", limits=LIMITS)
    with pytest.raises(DocumentError, match=r"^x\.yaml: not valid YAML: Exceeds the limit"):
        load_document("a: " + "1" * 5000 + "\n", form="yaml", source="x.yaml", limits=LIMITS)
    with pytest.raises(DocumentError, match=r"^x\.json: not valid JSON"):
        load_document('{"a": }', form="json", source="x.json", limits=LIMITS)


@pytest.mark.timeout(30)
def test_shorten_reads_only_what_it_shows() -> None:
    bomb = yaml.safe_load(alias_bomb())["views"]  # a billion strings, shared
    for value in (bomb, "x" * 50_000_000, list(range(1_000_000)), {f"k{i}": i for i in range(100_000)}):
        assert len(shorten(value)) <= 120
    assert shorten("fast") == "'fast'" and shorten([1, 2]) == "[1, 2]"
    assert shorten(int("9" * 4300) * 10**10) == "<int>"  # too long for Python to print
