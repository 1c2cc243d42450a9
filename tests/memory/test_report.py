import mmap
import threading
import time

import pytest
import torch

from vidfit.memory import MemoryReport, memory_report, track_peak
from vidfit.memory._report import format_bytes, parse_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16GiB", 16 * 2**30),
        ("16 gib", 16 * 2**30),
        ("7.5GiB", int(7.5 * 2**30)),
        ("500MB", 500 * 10**6),
        ("2kb", 2000),
        ("3 KiB", 3072),
        ("1TiB", 2**40),
        ("1 tb", 10**12),
        ("42 B", 42),
        (".5 MiB", 2**19),
        (1024, 1024),
    ],
)
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["16 GiBs", "GiB", "-1GiB", "1e3", "", "16 G iB"])
def test_parse_bytes_rejects_with_accepted_forms(bad: str) -> None:
    with pytest.raises(ValueError, match=rf"memory size '{bad}' is not .*KiB, MiB, GiB"):
        parse_bytes(bad)


@pytest.mark.parametrize("bare", ["16", " 7.5 "])
def test_parse_bytes_asks_for_a_unit(bare: str) -> None:
    number = bare.strip()
    with pytest.raises(ValueError, match=rf"budget '{bare}' has no unit: write e.g. '{number}GiB', '{number}GB'"):
        parse_bytes(bare, name="budget")


def test_parse_bytes_rejects_negative_int_and_bool() -> None:
    with pytest.raises(ValueError, match="-5 is negative"):
        parse_bytes(-5)
    with pytest.raises(ValueError, match="True is not"):
        parse_bytes(True)


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (int(7.3 * 2**30), "7.30 GiB"), (3 * 2**40, "3.00 TiB")],
)
def test_format_bytes(num_bytes: int, text: str) -> None:
    assert format_bytes(num_bytes) == text


def test_format_then_parse_round_trips_to_a_hundredth() -> None:
    size = 5 * 2**30 + 123_456_789
    assert abs(parse_bytes(format_bytes(size)) - size) <= 0.005 * 2**30


def test_cpu_report_fills_only_rss() -> None:
    report = memory_report("cpu")
    assert report.device == "cpu"
    assert report.process_rss_bytes > 0
    assert report.allocated_bytes is None and report.device_total_bytes is None
    assert report.as_dict()["process_rss_bytes"] == report.process_rss_bytes
    box = report.box()
    assert "Process RSS" in box and "PyTorch" not in box and "Device" not in box


def test_box_frames_every_line_at_one_width() -> None:
    gib = 2**30
    report = MemoryReport(
        device="cuda:0",
        process_rss_bytes=3 * gib,
        allocated_bytes=7 * gib,
        reserved_bytes=8 * gib,
        peak_allocated_bytes=9 * gib,
        device_used_bytes=10 * gib,
        device_free_bytes=6 * gib,
        device_total_bytes=16 * gib,
    )
    lines = report.box().splitlines()
    assert lines[0].startswith("╔") and lines[2].startswith("╠") and lines[-1].startswith("╚")
    assert len({len(line) for line in lines}) == 1
    assert "Memory use (cuda:0)" in lines[1]
    body = [line.strip("║").rstrip() for line in lines[3:-1]]
    assert body == [
        " Device total:         16.00 GiB",
        " Device used:          10.00 GiB",
        " Device free:           6.00 GiB",
        "",
        " PyTorch allocated:     7.00 GiB",
        " PyTorch reserved:      8.00 GiB",
        " PyTorch peak:          9.00 GiB",
        "",
        " Process RSS:           3.00 GiB",
    ]


def test_cpu_track_peak_sees_a_short_lived_allocation() -> None:
    size = 64 * 2**20
    with track_peak("cpu") as peak:
        # An anonymous mapping gets fresh pages: freed heap memory from earlier tests cannot be reused.
        block = mmap.mmap(-1, size)
        block.write(b"\x01" * size)
        time.sleep(0.05)
        block.close()
    assert peak.start_bytes > 0
    assert peak.delta_bytes >= size * 0.9
    assert peak.peak_bytes == peak.start_bytes + peak.delta_bytes
    assert not any(t.name == "vidfit-rss-sampler" for t in threading.enumerate())


def test_cpu_track_peak_fills_result_when_the_block_raises() -> None:
    with pytest.raises(KeyError), track_peak("cpu") as peak:
        raise KeyError("boom")
    assert peak.peak_bytes >= peak.start_bytes > 0
    assert not any(t.name == "vidfit-rss-sampler" for t in threading.enumerate())


@pytest.mark.cuda
def test_cuda_report_and_peak() -> None:
    with track_peak("cuda") as peak:
        block = torch.empty(32 * 2**20, dtype=torch.uint8, device="cuda")
        del block
    assert peak.delta_bytes >= 32 * 2**20
    report = memory_report("cuda")
    assert report.device_total_bytes is not None and report.device_free_bytes is not None
    assert report.device_used_bytes == report.device_total_bytes - report.device_free_bytes
    assert "PyTorch peak" in report.box()


def test_print_memory_stats_prints_the_box_and_returns_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    from vidfit.memory import print_memory_stats

    report = print_memory_stats("cpu")
    printed = capsys.readouterr().out
    assert printed.strip() == report.box() and "Process RSS:" in printed and report.device == "cpu"
