"""`vidfit report` at scale: the page's size, the time to write it, and the time a browser takes to open it.

Run: .venv/bin/python benchmarks/report.py [--quick] [--screenshot docs/report.png --source RUN_DIR]

Cases (made-up predictions documents, `tests/apps/report_documents.py`):
  * one video of 100,000 frames whose prediction changes every other frame (the worst case for its timeline);
  * 1,000 videos of 3,000 frames, each 6 true segments and a prediction with 8 short wrong stretches;
  * 1,000 videos of 100,000 frames, the same segments over 33 times as many frames;
  * 1,000 videos of 1,000 frames predicted wrong every other frame: a segment a frame, the largest page (each
    lane resampled to the page's budget of runs).
For each: the seconds `write_report` takes (reading the JSON, counting, drawing the SVG, writing the page), the
page's size, and in headless Chromium (where installed) the milliseconds from navigation to the first page of
strips drawn: the first open (a cold browser) and the median of 5 more. Prints a Markdown table.

`--screenshot` writes a small PNG of a report (`--source`: a run folder, a predictions JSON or a written page) as
the docs show it: the top of the page and its first video strips, quantized to a few colours.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' document makers and browser driver

from tests.apps.report_documents import long_video_document, many_videos_document
from tests.browser import Browser, find_chromium
from vidfit.apps import write_report

LOADS = 5


def _load_ms(browser: Browser, page: Path) -> float:
    browser.open(page.resolve().as_uri())
    browser.wait_for("document.body.dataset.ready === '1'")
    if browser.errors:
        raise RuntimeError(f"{page}: the page logged errors: {browser.errors}")
    return float(browser.evaluate("Math.max(performance.getEntriesByType('navigation')[0].loadEventEnd, reportReady)"))


def _cases(folder: Path, *, quick: bool) -> list[tuple[str, Path]]:
    scale = 10 if quick else 1
    return [
        (
            f"1 video x {100_000 // scale:,} frames",
            long_video_document(folder / "long.json", num_frames=100_000 // scale),
        ),
        (
            f"{1000 // scale:,} videos x 3,000 frames",
            many_videos_document(folder / "many.json", num_videos=1000 // scale),
        ),
        (
            f"{1000 // scale:,} videos x {100_000 // scale:,} frames",
            many_videos_document(folder / "long_many.json", num_videos=1000 // scale, num_frames=100_000 // scale),
        ),
        (
            f"{1000 // scale:,} videos x 1,000 frames, wrong every other frame",
            many_videos_document(folder / "flicker.json", num_videos=1000 // scale, num_frames=1000, flicker=True),
        ),
    ]


def measure(*, quick: bool) -> None:
    executable = find_chromium()
    print("| case | JSON (MB) | write_report (s) | page (MB) | first open (ms) | median open (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        browser = Browser(executable) if executable else None
        try:
            for name, document in _cases(Path(folder), quick=quick):
                start = time.perf_counter()
                report = write_report(document)
                seconds = time.perf_counter() - start
                opens = [_load_ms(browser, report.path) for _ in range(LOADS + 1)] if browser else []
                first, median = (f"{opens[0]:.0f}", f"{statistics.median(opens[1:]):.0f}") if opens else ("-", "-")
                size = document.stat().st_size / 1e6
                print(f"| {name} | {size:.1f} | {seconds:.1f} | {report.size_bytes / 1e6:.2f} | {first} | {median} |")
        finally:
            if browser is not None:
                browser.close()
    if executable is None:
        print("\nChromium not found: no load times (Debian: apt-get install chromium)")


def screenshot(source: Path, target: Path, *, width: int = 1100, height: int = 1500, colours: int = 128) -> None:
    """A PNG of the report of `source` (a page, or what `write_report` takes), palette-quantized to stay small."""
    from PIL import Image

    executable = find_chromium()
    if executable is None:
        raise SystemExit("Chromium not found: install it (Debian: apt-get install chromium)")
    page = source if source.suffix == ".html" else write_report(source).path
    with Browser(executable, width=width, height=height) as browser:
        _load_ms(browser, page)
        browser.wait_for("[...document.querySelectorAll('video')].every(v => v.readyState >= 2 || v.error)")
        # The first strips in view, with each video one second in: the players show a frame, not black.
        browser.evaluate("document.querySelectorAll('video').forEach(v => { v.currentTime = 1.0; })")
        browser.wait_for("[...document.querySelectorAll('video')].every(v => !v.seeking)")
        time.sleep(0.5)
        png = browser.screenshot(full_page=True)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(colors=colours, method=Image.Quantize.FASTOCTREE)
    image.save(target, format="PNG", optimize=True)
    print(f"{target}: {image.width}x{image.height}, {target.stat().st_size / 1024:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the frames and videos")
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the report of --source instead")
    parser.add_argument("--source", type=Path, help="the run folder, predictions JSON or page to screenshot")
    args = parser.parse_args()
    if args.screenshot is not None:
        if args.source is None:
            parser.error("--screenshot needs --source")
        screenshot(args.source, args.screenshot)
    else:
        measure(quick=args.quick)


if __name__ == "__main__":
    main()
