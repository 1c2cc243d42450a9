"""The demo's report in headless Chromium: timelines drawn in the class colours, clicks seek the videos, no errors.

Skipped, with the reason printed, where Chromium is not installed (`.ci/run` installs Debian's `chromium`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.report_documents import many_videos_document
from tests.browser import Browser, find_chromium
from vidfit.apps import write_report
from vidfit.cli import main

pytestmark = pytest.mark.slow

# Largest difference, per channel, between a pixel of the screenshot and the colour the page was asked to draw.
COLOUR_TOLERANCE = 6


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        print(f"\nskipped: {reason}")
        pytest.skip(reason)
    with Browser(executable, width=1280, height=900) as opened:
        yield opened


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vidfit demo` shrunk to seconds; the report whose path it prints."""
    root = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--data-dir", str(root / "data"), "--output-dir", str(root / "runs"), "--epochs", "1",
                     "--videos-per-class", "2", "--no-progress"])  # fmt: skip
    assert code == 0
    (line,) = [line for line in printed.getvalue().splitlines() if line.startswith("report: ")]
    return Path(line.removeprefix("report: "))


def _open(browser: Browser, page: Path) -> float:
    """Opens the report and waits for its script; the milliseconds from navigation to the first page drawn."""
    browser.errors.clear()
    browser.open(page.resolve().as_uri())
    browser.wait_for("document.body.dataset.ready === '1'")
    return float(browser.evaluate("Math.max(performance.getEntriesByType('navigation')[0].loadEventEnd, reportReady)"))


def _seconds(video: dict[str, Any], frame: int) -> float:
    first, first_seconds, last, last_seconds = video["clock"]
    return first_seconds + (frame - first) * (last_seconds - first_seconds) / (last - first)


def _runs(values: list[int], origin: int) -> list[tuple[int, int, int, int]]:
    """A lane of the page's data as (start, stop, class, alpha) runs."""
    runs, at = [], origin
    for gap, length, label, alpha in zip(values[::4], values[1::4], values[2::4], values[3::4], strict=True):
        runs.append((at + gap, at + gap + length, label, alpha))
        at += gap + length
    return runs


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_the_demo_report_draws_its_timelines_and_seeks_its_videos(
    browser: Browser, demo_report: Path, tmp_path: Path
) -> None:
    from PIL import Image

    load_ms = _open(browser, demo_report)
    print(
        f"\ndemo report {demo_report.stat().st_size / 1024:.0f} KiB: first page drawn {load_ms:.0f} ms after navigation"
    )
    data, layout = (
        browser.evaluate("JSON.parse(document.getElementById('report-data').textContent)"),
        browser.evaluate("({lane: vidfitReport.lane, gap: vidfitReport.gap, top: vidfitReport.top})"),
    )
    browser.wait_for("[...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)")
    unplayable = browser.evaluate("[...document.querySelectorAll('video')].filter(v => v.error).length")
    print(f"players that cannot play their file here: {unplayable}")
    position = next(i for i, v in enumerate(data["videos"]) if len(_runs(v["true"][0], v["frames"][0])) > 1)
    video = data["videos"][position]
    left, top, width = browser.evaluate(
        f"(() => {{ const c = document.querySelectorAll('.video canvas')[{position}]; c.scrollIntoView({{block: "
        "'center'}); const r = c.getBoundingClientRect(); return [r.left, r.top, r.width]; })()"
    )
    start, span = video["frames"][0], video["frames"][1] - video["frames"][0]
    screen = Image.open(io.BytesIO(browser.screenshot(tmp_path / "demo.png"))).convert("RGB")
    true_y = top + layout["top"] + layout["lane"] / 2 - 1
    pred_y = true_y + len(video["true"]) * layout["lane"] + layout["gap"]
    for lane_y, runs, opaque in ((true_y, _runs(video["true"][0], start), True),
                                 (pred_y, _runs(video["pred"][0], start), False)):  # fmt: skip
        for first, stop, label, alpha in runs:
            if (stop - first) / span * width < 8:
                continue  # too narrow to sample its middle away from the edges
            x = left + ((first + stop) / 2 - start) / span * width
            share = 1.0 if opaque else 0.2 + 0.8 * alpha / 100
            lane_back = (0xF3, 0xF4, 0xF6)
            wanted = [
                round(c * share + b * (1 - share)) for c, b in zip(_rgb(data["colours"][label]), lane_back, strict=True)
            ]
            found = screen.getpixel((round(x), round(lane_y)))
            assert max(abs(a - b) for a, b in zip(found, wanted, strict=True)) <= COLOUR_TOLERANCE, (
                f"{video['id']}: the run {first}-{stop} of {data['classes'][label]} at ({x:.0f}, {lane_y:.0f}) is "
                f"{found}, not {wanted}"
            )
    # A click on the true timeline's last segment seeks every view of the video to its first frame.
    first, stop, _, _ = _runs(video["true"][0], start)[-1]
    browser.click(left + ((first + stop) / 2 - start) / span * width, true_y)
    players = f"document.querySelectorAll('.video')[{position}].querySelectorAll('video')"
    times = browser.wait_for(f"(() => {{ const t = [...{players}].map(v => v.currentTime); return t[0] > 0 && t; }})()")
    assert times == pytest.approx([_seconds(video, first)] * len(video["views"]), abs=1e-3)
    assert browser.evaluate(f"{players}.length") == len(video["views"]) == 2  # the views side by side
    if not unplayable:  # playing the first view plays the other, in step
        browser.evaluate(f"{players}[0].play()")
        playing = (
            f"(() => {{ const [a, b] = {players}; return !a.paused && !b.paused && a.currentTime > {times[0]}; }})()"
        )
        browser.wait_for(playing)
        browser.evaluate(f"{players}[0].pause()")
        browser.wait_for(f"[...{players}].every(v => v.paused)")
        lead, follower = browser.evaluate(f"[...{players}].map(v => v.currentTime)")
        assert abs(lead - follower) < 0.05
    assert browser.errors == []


def test_a_thousand_videos_are_paged(browser: Browser, tmp_path: Path) -> None:
    report = write_report(many_videos_document(tmp_path / "many.json", num_videos=1000))
    load_ms = _open(browser, report.path)
    print(f"\n1,000 videos, {report.size_bytes / 2**20:.2f} MiB: first page drawn {load_ms:.0f} ms after navigation")
    ids = "[...document.querySelectorAll('.video .id')].map(e => e.textContent)"
    shown = browser.evaluate(ids)
    assert len(shown) == 20 and browser.evaluate("document.querySelector('.page-label').textContent").startswith(
        "page 1 of 50 (1000 videos)"
    )
    browser.evaluate("document.querySelector('button.next').click()")
    following = browser.evaluate(ids)
    data = browser.evaluate("JSON.parse(document.getElementById('report-data').textContent).videos.map(v => v.id)")
    assert shown == data[:20] and following == data[20:40]
    assert browser.errors == []
