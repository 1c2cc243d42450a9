"""The GPU acceptance suite's sections: each a generator of result rows, sized for the GPU or for a CPU smoke run.

Every section calls the benchmark scripts' own functions (decode.py, loader.py, train.py, infer.py, plan.py,
sr.py, encoders.py, extract.py, temporal_train.py) at settings that fit its time budget; `gpu_suite.py` runs each
in its own process under that budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import decode
import encoders
import extract
import infer
import loader
import plan
import pytest
import sr
import temporal_train
import torch
import train
from _cache import bench_video

from vidfit.memory import memory_report, track_peak
from vidfit.memory._report import format_bytes, parse_bytes
from vidfit.models import build_classifier
from vidfit.train._guard import OomGuard

Figure = float | int | str | None


@dataclass(frozen=True)
class Row:
    """One measured row: its figures, the target it is held to (empty: reported only) and the verdict."""

    name: str
    figures: dict[str, Figure] = field(default_factory=dict)
    target: str = ""
    passed: bool | None = None


@dataclass(frozen=True)
class Context:
    """What a section is run with: smoke (tiny, CPU) or full settings, a work folder, its budget."""

    smoke: bool
    work: Path
    budget_s: float

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


Section = Callable[[Context], Iterator[Row]]


def _rate(count: Callable[[Path], int], path: Path, warmup: Path) -> float:
    count(warmup)  # loads codecs and scalers, so the timed run measures decoding alone
    started = time.perf_counter()
    return count(path) / (time.perf_counter() - started)


def decode_section(ctx: Context) -> Iterator[Row]:
    """PyAV's own decode loop, `iter_chunks` on PyAV, and `iter_chunks` on NVDEC, in frames/s."""
    num_frames, height, width, gop = (60, 64, 96, 10) if ctx.smoke else (600, 720, 1280, 50)
    video = bench_video(num_frames=num_frames, height=height, width=width, gop=gop)
    warmup = bench_video(num_frames=num_frames // 4, height=height, width=width, gop=gop)
    ceiling = _rate(decode.pyav_threaded, video, warmup)
    yield Row("PyAV threaded decode (ceiling)", {"frames_per_s": round(ceiling, 1), "frames": num_frames})
    chunks = _rate(decode.iter_chunks, video, warmup)
    yield Row("pyav iter_chunks(64, overlap 16)", {"frames_per_s": round(chunks, 1), "vs_ceiling": chunks / ceiling},
              ">= 0.90 of the ceiling", chunks / ceiling >= 0.90)  # fmt: skip
    reason = decode.nvdec_unavailable(warmup)
    if reason is not None:
        yield Row("nvdec iter_chunks(64, overlap 16)", {"skipped": reason})
        return
    nvdec = _rate(decode.iter_chunks_nvdec, video, warmup)
    yield Row("nvdec iter_chunks(64, overlap 16)", {"frames_per_s": round(nvdec, 1), "vs_pyav_chunks": nvdec / chunks})


def loader_section(ctx: Context) -> Iterator[Row]:
    """`VideoDataset` clips from prepared files by worker count, against bare PyAV decoding the same clips."""
    if ctx.smoke:
        settings = loader.Settings(2, 48, 32, 48, (32, 48), 8, 8, (), (0, 0), gop=8, max_seconds=1)
    else:
        settings = loader.Settings(8, 600, 160, 210, (160, 210), 40, 600, (), (0, 0), gop=16, max_seconds=5)
    folder = ctx.work / "loader"
    manifest = loader.write_dataset(folder, settings)
    cores = torch.multiprocessing.cpu_count()
    counts = sorted({min(n, cores) for n in ((0, 2) if ctx.smoke else (0, 4, 8, 16))})
    for workers in counts:
        ours = loader.clips_per_second(manifest, settings, workers, "pyav")
        bare = loader.bare_clips_per_second(folder, settings, workers)
        target, passed = ">= 0.95 of bare PyAV", ours / bare >= 0.95
        if workers == counts[-1]:
            target, passed = f"{target}; >= 300 clips/s on 16 cores", passed and ours >= 300 and cores >= 16
        figures = {"clips_per_s": round(ours, 1), "bare_pyav_clips_per_s": round(bare, 1), "vs_bare": ours / bare}
        yield Row(f"{workers} workers ({cores} cores)", figures, target, passed)


def train_section(ctx: Context) -> Iterator[Row]:
    """The plain baseline loop, the same loop by hand with vidfit's settings, vidfit's module, and `fit` from files."""
    small, full = train.Shape(2, 4, 32, 40, videos=4), train.Shape(12, 40, 160, 210, videos=16)
    backbone, shape = ("tiny", small) if ctx.smoke else ("r3d_18", full)
    steps, device, precision = (1 if ctx.smoke else 15), ctx.device, "16-mixed"
    clips = torch.randint(0, 256, (shape.batch, 3, shape.frames, shape.height, shape.width), dtype=torch.uint8)
    kwargs = {"batch": shape.batch, "steps": steps, "device": device}
    baseline = train.baseline_loop(backbone, clips, **kwargs)  # type: ignore[arg-type]
    yield Row("baseline loop", {"clips_per_s": round(baseline, 2)})
    hand = train.tuned_loop(backbone, clips, precision=precision, **kwargs)  # type: ignore[arg-type]
    yield Row("vidfit settings by hand", {"clips_per_s": round(hand, 2)})
    ours = train.vidfit_module(backbone, clips, precision=precision, **kwargs)  # type: ignore[arg-type]
    figures = {"clips_per_s": round(ours.timed, 2), "vs_hand": ours.timed / hand, "vs_seed": ours.timed / baseline}
    passed = ours.timed / hand >= 0.97 and ours.timed / baseline >= 1.8
    yield Row("vidfit module (in memory)", figures, "within 3% of by hand; >= 1.8x the baseline loop", passed)
    files = train.vidfit_fit_from_files(
        backbone, shape, steps=steps, device=device, folder=ctx.work / "train", precision=precision
    )
    yield Row("vidfit fit (prepared files)", {"clips_per_s": round(files, 2), "vs_in_memory": files / ours.monitored},
              ">= 0.95 of in memory (monitor's rate)", files / ours.monitored >= 0.95)  # fmt: skip


def infer_section(ctx: Context) -> Iterator[Row]:
    """Peak memory and speed of chunked inference from 1k to 10k frames, and chunked against whole-video speed."""
    backbone, size, lengths = ("tiny", 32, (100, 1000)) if ctx.smoke else ("r3d_18", 112, (1000, 10000))
    videos = [bench_video(num_frames=n, height=size, width=size, gop=32) for n in lengths]
    infer.predict_once(str(videos[0]), backbone, size, 64, 8)  # warm-up: cuDNN's choices, lazy initialization
    peaks = []
    for frames, video in zip(lengths, videos, strict=True):
        run = infer.predict_once(str(video), backbone, size, 64, 8)
        peak = run.gpu_peak_bytes if run.gpu_peak_bytes is not None else run.host_peak_bytes
        peaks.append(peak)
        figures = {"frames_per_s": round(frames / run.seconds, 1), "peak_gpu": format_bytes(run.gpu_peak_bytes or 0),
                   "peak_host_rss": format_bytes(run.host_peak_bytes)}  # fmt: skip
        yield Row(f"{frames} frames, chunk 64 overlap 8", figures)
    memory = "GPU" if ctx.device.type == "cuda" else "host RSS (no GPU)"
    growth = peaks[-1] / peaks[0]
    yield Row(f"peak {memory}, {lengths[-1]} / {lengths[0]} frames", {"ratio": growth}, "<= 1.05", growth <= 1.05)
    chunked = infer.predict_once(str(videos[0]), backbone, size, 64, 0).seconds
    whole = infer.predict_once(str(videos[0]), backbone, size, -1, 0).seconds
    yield Row(f"chunked (64) vs whole video, {lengths[0]} frames", {"speed_ratio": whole / chunked},
              ">= 0.90 of whole-video fps", whole / chunked >= 0.90)  # fmt: skip


def extract_section(ctx: Context) -> Iterator[Row]:
    """`vidfit extract` (r3d_18, fp16, 16-frame windows every 4 frames) of 1k, 10k and 100k-frame videos: frames/s
    and peak memory, which must not grow with the video."""
    backbone, size, lengths = ("tiny", 32, (64, 256)) if ctx.smoke else ("r3d_18", 112, (1_000, 10_000, 100_000))
    runs = extract.extract_rows(ctx.work / "extract", backbone=backbone, size=size, lengths=lengths)
    for run in runs:
        peak_gpu = "no GPU" if run.gpu_peak_bytes is None else format_bytes(run.gpu_peak_bytes)
        figures = {"frames_per_s": round(run.frames_per_second, 1), "seconds": round(run.seconds, 1),
                   "peak_gpu": peak_gpu, "peak_host_rss": format_bytes(run.host_peak_bytes)}  # fmt: skip
        yield Row(f"{backbone} {size}x{size}, {run.num_frames} frames", figures)
    on_gpu = runs[0].gpu_peak_bytes is not None
    peaks = [run.gpu_peak_bytes if on_gpu else run.host_peak_bytes for run in runs]
    growth = (peaks[-1] or 0) / (peaks[0] or 1)
    memory = "GPU" if on_gpu else "host RSS (no GPU)"
    yield Row(f"peak {memory}, {lengths[-1]} / {lengths[0]} frames", {"ratio": growth}, "<= 1.05", growth <= 1.05)


def temporal_section(ctx: Context) -> Iterator[Row]:
    """The temporal task's training step over 100 videos of 10k frames of features (512 channels), each head."""
    shape = temporal_train.QUICK if ctx.smoke else temporal_train.Shape()
    manifest = temporal_train.write_features(ctx.work / "temporal" / "features", shape)
    model = {"channels": 8, "num_layers": 3, "num_stages": 2, "num_levels": 2} if ctx.smoke else {}
    for head in temporal_train.HEADS:
        run = temporal_train.train_steps(manifest, ctx.work / "temporal", head=head, steps=1 if ctx.smoke else 15,
                                         model=model)  # fmt: skip
        peak_gpu = "no GPU" if run.peak_gpu_bytes is None else format_bytes(run.peak_gpu_bytes)
        figures = {"s_per_step": run.seconds_per_step, "steps": run.steps, "peak_gpu": peak_gpu}
        yield Row(f"{head}, batch 4 of {shape.videos - 2} videos x {shape.frames} frames", figures)


def plan_section(ctx: Context) -> Iterator[Row]:
    """The fake-tensor estimate against the measured peak, three shapes per backbone."""
    total = memory_report().device_total_bytes
    backbones = ("tiny",) if ctx.smoke else ("r3d_18", "r2plus1d_18", "r3d_34")
    shapes = ((4, 2), (8, 2)) if ctx.smoke else ((16, 4), (32, 8), (40, 12))
    image_size = (32, 40) if ctx.smoke else (160, 210)
    budget = total or parse_bytes("16GiB", name="budget")
    for backbone in backbones:
        for frames, batch in shapes:
            config = plan._config(backbone, plan._Grid(frames=[frames], batch=[batch], image_size=image_size))
            (estimate,) = plan._plan(config, budget=budget, frames=[frames], batch=[batch], measure=False)
            measured = plan._plan(config, budget=budget, frames=[frames], batch=[batch], measure=True) if total else []
            peak = measured[0].peak_bytes if measured else None
            figures = {"estimate": format_bytes(estimate.peak_bytes or 0),
                       "measured": format_bytes(peak) if peak else ("oom" if measured else "no GPU")}  # fmt: skip
            ratio = (estimate.peak_bytes or 0) / peak if peak else None
            figures["estimate_vs_measured"] = ratio
            passed = None if ratio is None else abs(ratio - 1) <= 0.10
            yield Row(
                f"{backbone} {frames}x{image_size[0]}x{image_size[1]} batch {batch}", figures, "within 10%", passed
            )


def autofit_section(ctx: Context) -> Iterator[Row]:
    """`fit` with `batch_size: auto` for 20 steps under a 16 GiB cap (estimated, uncapped, on a CPU)."""
    if ctx.smoke:
        setup = plan.AutoFitSetup("tiny", 8, (32, 40), 2, effective_batch_size=4, max_steps=2, num_workers=0)
    else:
        setup = plan.AutoFitSetup("r2plus1d_18", 40, (160, 210), 8, effective_batch_size=12, max_steps=20)
    run = plan.autofit_run(setup, "16GiB", ctx.work / "autofit")
    yield Row("auto-fit", {"line": run.line, "seconds": round(run.seconds, 1)})
    yield Row("peak of the logged steps", {"peak_gib": run.peak_gib, "logged_steps": run.steps}, "<= 16 GiB",
              run.peak_gib <= 16)  # fmt: skip
    yield Row("OOM guard splits", {"max_micro_batches": run.max_micro_batches}, "none", run.max_micro_batches <= 1)


def sr_section(ctx: Context) -> Iterator[Row]:
    """ESPCN steps/s, peak memory and PSNR after fixed steps, in fp32, 16-mixed and bf16-mixed."""
    settings = replace(sr.QUICK, steps=3) if ctx.smoke else sr.Settings(256, 4, 96, 96, 32, steps=300)
    batch, device = (4 if ctx.smoke else 32), ctx.device
    train_patches, val_patches = sr.patches(settings, device)
    fp32 = None
    for precision in sr.PRECISIONS:
        row = sr.sr_row(train_patches, val_patches, device, precision, batch, settings.steps)
        figures: dict[str, Figure] = {"steps_per_s": row.steps_per_second, "psnr_y": row.psnr, "ssim": row.ssim,
                                      "peak": format_bytes(row.peak_bytes or 0), "failure": row.failure}  # fmt: skip
        fp32 = fp32 or row
        if row is not fp32 and row.steps_per_second and fp32.steps_per_second and row.psnr and fp32.psnr:
            figures |= {
                "speed_vs_fp32": row.steps_per_second / fp32.steps_per_second,
                "psnr_minus_fp32": row.psnr - fp32.psnr,
            }
        yield Row(f"{precision}, batch {batch}, {settings.steps} steps", figures)


def encoders_section(ctx: Context) -> Iterator[Row]:
    """VideoMAE-B at 16x224, fp16 and bf16, checkpointing off and on, in each way to fine-tune it: step time and
    peak memory beside the plan's estimate, and the largest batch that fits 16 GiB (a tiny VideoMAE, estimated, in
    smoke mode)."""
    setup = encoders.QUICK if ctx.smoke else encoders.Setup()
    model = encoders.save_model(setup, ctx.work / "videomae")
    for row in encoders.encoder_rows(setup, model, measure=ctx.device.type == "cuda"):
        ratio = row.estimate_bytes / row.measured_bytes if row.measured_bytes else None
        figures: dict[str, Figure] = {
            "estimate": format_bytes(row.estimate_bytes), "measured": row.measured, "estimate_vs_measured": ratio,
            "s_per_step": row.seconds_per_step, "largest_batch_estimated": row.largest_estimated,
            "largest_batch_measured": row.largest_measured,
        }  # fmt: skip
        targets, verdicts = ["estimate within 10%"], [None if ratio is None else abs(ratio - 1) <= 0.10]
        if row.mode == encoders.TARGET_MODE:
            targets.append(f"batch >= 8 within {setup.budget}")
            verdicts.append(None if row.largest_measured is None else row.largest_measured >= 8)
        known = [verdict for verdict in verdicts if verdict is not None]
        name = f"{row.mode}, {row.precision}, checkpointing {'on' if row.checkpointing else 'off'}, batch {row.batch}"
        yield Row(name, figures, "; ".join(targets), all(known) if known else None)


class _Outcomes:
    """A pytest plugin counting the outcomes of the tests' calls (and of set-ups that failed or skipped)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] = self.counts.get(report.outcome, 0) + 1


def cuda_tests_section(ctx: Context) -> Iterator[Row]:
    """`pytest -m cuda` over the test files that hold the marker (every such test is skipped without a GPU).

    Run in this process, which has torch and vidfit imported already, so collection costs seconds.
    """
    files = sorted(str(path) for path in Path("tests").rglob("test_*.py") if "mark.cuda" in path.read_text())
    outcomes = _Outcomes()
    exit_code = pytest.main(["-m", "cuda", "-q", "-p", "no:cacheprovider", *files], plugins=[outcomes])
    counts = outcomes.counts
    passed = counts.get("passed", 0) > 0 and not counts.get("failed") and not counts.get("skipped")
    figures = {**counts, "files": len(files), "exit_code": int(exit_code)}
    yield Row("pytest -m cuda", figures, "all pass, none skipped", passed)


def oom_guard_section(ctx: Context) -> Iterator[Row]:
    """A batch that runs out of memory (a real CUDA OOM under a memory fraction; injected without CUDA) is
    redone as micro-batches, and its gradients equal those of the same batch run whole."""
    device = ctx.device
    backbone, batch, shape = ("tiny", 4, (4, 32, 32)) if ctx.smoke else ("r3d_18", 8, (16, 112, 112))
    torch.backends.cudnn.allow_tf32 = False  # the split and whole steps must differ by rounding order alone
    torch.manual_seed(0)
    # Evaluation mode: BatchNorm uses its running statistics, so micro-batches see what the whole batch sees.
    model = build_classifier(backbone=backbone, num_classes=5, views=("v",)).to(device).eval()
    data = {"video": torch.randint(0, 256, (batch, 1, 3, *shape), dtype=torch.uint8, device=device),
            "label": torch.arange(batch, device=device) % 5}  # fmt: skip

    def compute(part: dict[str, torch.Tensor]) -> tuple[torch.Tensor, None]:
        logits = model(part["video"]).logits.float()
        return torch.nn.functional.cross_entropy(logits, part["label"], reduction="sum") / batch, None

    whole_peak, whole = _plain_step(model, compute, data, device)
    half_peak, _ = _plain_step(model, compute, {key: value[: batch // 2] for key, value in data.items()}, device)
    guard = OomGuard(list(model.parameters()), advice="lower data.batch_size")
    with _out_of_memory_above(model, batch // 2, device, (whole_peak + half_peak) // 2):
        result = guard.run(data, batch_size=batch, compute=compute, backward=torch.Tensor.backward)
    split = [p.grad for p in model.parameters()]
    pairs = [(a, b) for a, b in zip(split, whole, strict=True) if a is not None and b is not None]
    error = max(float((a - b).norm() / b.norm().clamp_min(1e-12)) for a, b in pairs)
    figures = {"oom": "real CUDA OOM" if device.type == "cuda" else "injected (no CUDA)",
               "oom_retries": result.oom_retries, "micro_batches": result.num_micro_batches,
               "whole_peak": format_bytes(whole_peak), "cap": format_bytes((whole_peak + half_peak) // 2),
               "max_relative_grad_difference": error}  # fmt: skip
    passed = result.oom_retries >= 1 and error <= 1e-3
    yield Row(
        f"{backbone}, batch {batch} x {'x'.join(map(str, shape))}", figures, "OOM redone; gradients equal", passed
    )


def _plain_step(
    model: torch.nn.Module, compute: Callable, data: dict[str, torch.Tensor], device: torch.device
) -> tuple[int, list[torch.Tensor | None]]:
    """Peak memory and gradients of one unguarded forward and backward."""
    model.zero_grad(set_to_none=True)
    with track_peak(device) as peak:
        compute(data)[0].backward()
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return peak.peak_bytes, grads


@contextmanager
def _out_of_memory_above(model: torch.nn.Module, fits: int, device: torch.device, cap_bytes: int) -> Iterator[None]:
    """On CUDA, caps the process at `cap_bytes`; on the CPU, raises an OOM for inputs of more than `fits` clips."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(cap_bytes / torch.cuda.get_device_properties(device).total_memory)
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
        return

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if len(args[0]) > fits:
            raise torch.OutOfMemoryError("CUDA out of memory (injected: no CUDA device)")

    handle = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# Each section's time limit on the GPU machine, in seconds: they add up to 14 minutes (the extract section's 4 of
# them: a 100,000-frame video is written first), and the encoders section's 5 more (20 measured rows and 20
# largest-batch searches: run it alone, `--only encoders`, on a loan of its own).
SECTIONS: dict[str, tuple[Section, int]] = {
    "cuda_tests": (cuda_tests_section, 75),
    "decode": (decode_section, 40),
    "loader": (loader_section, 90),
    "train": (train_section, 110),
    "infer": (infer_section, 45),
    "extract": (extract_section, 240),
    "temporal": (temporal_section, 60),
    "plan": (plan_section, 60),
    "autofit": (autofit_section, 50),
    "oom_guard": (oom_guard_section, 30),
    "sr": (sr_section, 40),
    "encoders": (encoders_section, 300),
}
SMOKE_BUDGET_S = 90
