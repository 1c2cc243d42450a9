"""DDP on the CPU (gloo, 2 processes): fit, evaluation and predict equal one process's; a failing rank ends the run.

The multi-process tests launch the way users do, in a subprocess: Lightning's own launcher for
`vidfit fit` (it runs the command again for each further rank) and torchrun for `predict`. Unlike
``ddp_spawn`` inside pytest, nothing has to be pickled into the workers and pytest's own command is
never run again; a launch runs in its own session, so a hang past its timeout kills every rank
and fails the test instead of blocking CI.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_overrides
from vidfit.apps import predict
from vidfit.config import load_config
from vidfit.data import load_manifest, save_manifest
from vidfit.infer import VideoScore, evaluation_metrics
from vidfit.infer._ranks import join_launch
from vidfit.tasks.action._evaluation import EvaluatedVideo, gather_videos
from vidfit.train import validate
from vidfit.train._distributed import agree_on_min

LAUNCH_TIMEOUT_SECONDS = 90.0


def _launch(command: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs a launch in its own session on the CPU; one still running after the timeout (a hang) fails the test."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGTERM first: torchrun starts its workers in sessions of their own and stops them itself on SIGTERM;
        # Lightning's ranks share the launch's session and go with the SIGKILL.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        pytest.fail(f"still running after {LAUNCH_TIMEOUT_SECONDS} s (a hang): {command}\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output)


@pytest.fixture(scope="module")
def three_val_manifest(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_manifest` with 5 training and 3 validation videos: 2 ranks get shards of 2 (one a repeat)."""
    manifest = load_manifest(tiny_manifest)
    first_val = next(entry.id for entry in manifest.videos if entry.split == "val")
    videos = tuple(dataclasses.replace(v, split="train") if v.id == first_val else v for v in manifest.videos)
    path = tmp_path_factory.mktemp("three_val") / "manifest.yaml"
    return save_manifest(dataclasses.replace(manifest, videos=videos), path)


def test_agree_on_min_and_join_launch_without_a_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    assert agree_on_min(5) == 5
    with pytest.raises(TypeError, match=r"agree_on_min takes an int, got 2.5"):
        agree_on_min(2.5)  # type: ignore[arg-type]
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with join_launch() as ranks:
        assert (ranks.rank, ranks.world_size, ranks.local_rank) == (0, 1, 0)
        assert not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"WORLD_SIZE='two' is not an integer"), join_launch():
        pass


def test_gathered_videos_are_scored_once_in_split_order() -> None:
    def evaluated(position: int, loss: float, label: int, scores: tuple[float, float]) -> EvaluatedVideo:
        return EvaluatedVideo(position, VideoScore(f"v{position}", label, scores, None), loss)

    results = [
        evaluated(2, 3.0, 1, (1.0, 0.0)),
        evaluated(1, 2.0, 1, (0.0, 1.0)),
        evaluated(0, 1.0, 0, (1.0, 0.0)),
        evaluated(2, 3.0, 1, (1.0, 0.0)),  # DistributedSampler's repeat of a video another rank had
    ]
    gathered = gather_videos(results)
    assert [video.position for video in gathered] == [0, 1, 2]
    metrics = evaluation_metrics([video.score for video in gathered], num_classes=2)
    assert metrics.num_videos == 3 and metrics.top1 == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="num_classes=1"):
        evaluation_metrics([], num_classes=1)


@pytest.mark.distributed
def test_ddp_fit_on_two_processes_validates_like_one_process(three_val_manifest: Path, tmp_path: Path) -> None:
    # Each rank's shard of 3 training clips makes 3 batches of 1, accumulated into one optimizer step: the ranks
    # only end with equal weights (and metrics equal to one process's) if the step averages all 3 across ranks.
    # The whole validation split, so that one process sees the same chunks.
    extra = (
        "data.batch_size=1",
        "train.accumulate_grad_batches=3",
        "trainer.max_steps=-1",
        "trainer.limit_val_batches=1.0",
        "trainer.accelerator=cpu",
    )
    overrides = tiny_overrides(three_val_manifest, tmp_path / "runs", *extra)
    ddp = ["trainer.strategy=ddp", "trainer.devices=2"]
    (tmp_path / "empty.yaml").write_text("{}\n")
    arguments = [item for override in overrides + ddp for item in ("--set", override)]
    command = [sys.executable, "-m", "vidfit.cli", "fit", "--config", str(tmp_path / "empty.yaml"), *arguments]
    launch = _launch(command, cwd=tmp_path)
    assert launch.returncode == 0, launch.stdout[-4000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in launch.stdout
    runs = list((tmp_path / "runs" / "vidfit").iterdir())
    assert [run.name for run in runs] == ["version_0"], "every rank must log to the same run folder"
    assert (runs[0] / "config.yaml").is_file()
    last = runs[0] / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 1
    with (runs[0] / "metrics.csv").open() as file:
        logged = [row for row in csv.DictReader(file) if row["val/acc"]][-1]
    single = validate(load_config(None, overrides), checkpoint=last)
    assert {"val/loss", "val/top1", "val/frame_acc", "val/mAP"} <= set(single)
    assert {key: float(logged[key]) for key in single} == single


PREDICT_SCRIPT = """
    import json, sys
    import torch.distributed as dist
    from vidfit.apps import predict
    from vidfit.infer._ranks import join_launch
    from vidfit.train._distributed import agree_on_min

    checkpoint, manifest, out = sys.argv[1:]
    with join_launch() as ranks:
        agreed = agree_on_min(7 if ranks.rank == 1 else 12)
        result = predict(checkpoint, [manifest], out=out, progress=False)
        report = {"rank": ranks.rank, "world_size": dist.get_world_size(), "agreed": agreed,
                  "predicted": list(result.predictions), "failures": result.failures,
                  "frame_accuracy": result.frame_accuracy, "segment_f1": result.segment_f1}
    with open(f"{out}.rank{ranks.rank}.json", "w") as file:
        json.dump(report, file)
"""


@pytest.mark.distributed
def test_torchrun_predict_writes_what_one_process_writes(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = shutil.copytree(tiny_manifest.parent, tmp_path / "data")
    manifest = load_manifest(data / tiny_manifest.name)
    garbage = data / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    broken = dataclasses.replace(manifest.videos[3], views={**manifest.videos[3].views, "left": garbage})
    videos = (*manifest.videos[:3], broken, *manifest.videos[4:])
    inputs = save_manifest(dataclasses.replace(manifest, videos=videos), data / "broken.yaml")
    script = tmp_path / "predict_on_ranks.py"
    script.write_text(textwrap.dedent(PREDICT_SCRIPT))
    out = tmp_path / "ddp" / "p.json"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    launch = _launch([*torchrun, str(script), str(tiny_checkpoint), str(inputs), str(out)], cwd=tmp_path)
    assert launch.returncode == 0, launch.stdout[-4000:]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the ranks ran on the CPU: so does this one
    single = predict(tiny_checkpoint, [inputs], out=tmp_path / "single" / "p.json", progress=False)
    assert out.read_bytes() == single.json_path.read_bytes()
    assert out.with_suffix(".csv").read_bytes() == single.csv_path.read_bytes()
    reports = [json.loads(Path(f"{out}.rank{rank}.json").read_text()) for rank in range(2)]
    ids = [video.id for video in videos]
    assert [r["world_size"] for r in reports] == [2, 2] and [r["agreed"] for r in reports] == [7, 7]
    assert reports[0]["predicted"] == list(single.predictions) == [i for i in ids if i != broken.id]
    assert reports[1]["predicted"] == [i for i in ids[1::2] if i != broken.id]  # rank 1's share: every 2nd video
    for report in reports:
        assert report["failures"] == single.failures and list(single.failures) == [broken.id]
        assert (report["frame_accuracy"], report["segment_f1"]) == (single.frame_accuracy, single.segment_f1)


FAILING_FIT_SCRIPT = """
    import sys
    import lightning as L
    from vidfit.config import load_config
    from vidfit.train import _run, fit

    class FailOnRankOne(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_rank == 1:
                raise RuntimeError("rank 1 fails on purpose")

    make_trainer = _run._trainer

    def with_failure(config, **options):
        trainer = make_trainer(config, **options)
        trainer.callbacks.append(FailOnRankOne())
        return trainer

    _run._trainer = with_failure
    fit(load_config(None, sys.argv[1:]))
"""


@pytest.mark.distributed
def test_a_failing_rank_ends_the_run_with_its_error(three_val_manifest: Path, tmp_path: Path) -> None:
    script = tmp_path / "fail_on_rank_one.py"
    script.write_text(textwrap.dedent(FAILING_FIT_SCRIPT))
    extra = ("trainer.accelerator=cpu", "trainer.strategy=ddp", "trainer.devices=2")
    launch = _launch([sys.executable, str(script), *tiny_overrides(three_val_manifest, tmp_path, *extra)], cwd=tmp_path)
    assert launch.returncode != 0
    assert "RuntimeError: rank 1 fails on purpose" in launch.stdout
