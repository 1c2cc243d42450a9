"""The report of a super-resolution run: PSNR and SSIM per validation video against bicubic, and a crop side by side.

Scored as validation scores (`SRMetrics`: Y channel, BT.601): each frame is bicubic-downsampled by the model's
scale, upscaled by the model and by bicubic interpolation, and both are compared with the original. The work is
bounded: a few frames of a few videos, each cut to its centre `MAX_SIDE_PIXELS` square first.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from vidfit.apps._report_run import RunFolder, setting
from vidfit.data import load_manifest
from vidfit.io import VideoReader
from vidfit.models import ESPCN
from vidfit.tasks.super_resolution import load_sr_module
from vidfit.tasks.super_resolution._module import SRMetrics
from vidfit.tasks.super_resolution._patches import downsample_bicubic

MAX_VIDEOS = 8
FRAMES_PER_VIDEO = 3
# Side of the centre square of each frame that is scored, in high-resolution pixels.
MAX_SIDE_PIXELS = 256
# Side of the crop shown side by side, in high-resolution pixels, and how much it is enlarged on the page.
CROP_PIXELS = 64
CROP_ZOOM = 3


@dataclass(frozen=True)
class SRVideoScore:
    """A video's figures.

    Attributes:
        video_id: The video.
        num_frames: Frames scored.
        psnr: The model's mean PSNR (dB).
        ssim: The model's mean SSIM.
        bicubic_psnr: Bicubic interpolation's mean PSNR (dB).
        bicubic_ssim: Bicubic interpolation's mean SSIM.
    """

    video_id: str
    num_frames: int
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


@dataclass(frozen=True)
class SREvaluation:
    """What the report shows of a super-resolution run.

    Attributes:
        checkpoint: The checkpoint scored.
        scores: Per video, worst gain over bicubic first.
        crop_png: The first video's middle frame, a crop of the original, bicubic and the model side by side.
        crop_video_id: The video of the crop.
    """

    checkpoint: Path
    scores: list[SRVideoScore]
    crop_png: bytes | None
    crop_video_id: str | None


def scored_checkpoint(run: RunFolder) -> Path | None:
    """The run's best checkpoint (the one besides ``last.ckpt``, newest first), else its last one."""
    found = sorted((run.path / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    best = [p for p in found if p.name != "last.ckpt" and not p.name.startswith("interrupt")]
    return next(iter(best or found), None)


def evaluate_sr(run: RunFolder, *, split: str | None = None) -> SREvaluation | None:
    """Scores the run's checkpoint on its manifest's validation videos; None without a checkpoint or manifest."""
    checkpoint, manifest = scored_checkpoint(run), setting(run.config, "data.manifest")
    if checkpoint is None or manifest is None or not Path(manifest).is_file():
        return None
    model = load_sr_module(checkpoint).model.eval()
    wanted = split or setting(run.config, "data.val_split") or "val"
    videos = [v for v in load_manifest(manifest).videos if v.split == wanted][:MAX_VIDEOS]
    scores, crop = [], None
    for entry in videos:
        source = next(iter(entry.views.values()))
        score, images = _score_video(model, entry.id, source)
        scores.append(score)
        crop = crop or _side_by_side(*images)
    scores.sort(key=lambda s: s.psnr - s.bicubic_psnr)
    return SREvaluation(checkpoint, scores, crop, videos[0].id if crop else None)


@torch.inference_mode()
def _score_video(model: ESPCN, video_id: str, source: Path | str) -> tuple[SRVideoScore, tuple]:
    scale, span = model.scale, model.num_frames
    ours, bicubic = SRMetrics(), SRMetrics()
    with VideoReader(source) as reader:
        count = len(reader)
        centres = sorted({round(k * (count - 1) / max(FRAMES_PER_VIDEO - 1, 1)) for k in range(FRAMES_PER_VIDEO)})
        images: tuple = ()
        for centre in centres:
            positions = [min(max(centre + k - span // 2, 0), count - 1) for k in range(span)]
            frames = _centre_square(reader.get_frames_at(positions).data, scale=scale)
            low = downsample_bicubic(frames, scale=scale)
            target = frames[span // 2 : span // 2 + 1].float() / 255
            predicted = model(low.unsqueeze(0)).float().clamp(0, 1)
            plain = F.interpolate(low[span // 2 : span // 2 + 1].float() / 255, scale_factor=scale, mode="bicubic")
            plain = plain.clamp(0, 1)
            ours.update(predicted, target)
            bicubic.update(plain, target)
            if centre == centres[len(centres) // 2]:
                images = (target[0], plain[0], predicted[0])
    model_figures, bicubic_figures = ours.compute(), bicubic.compute()
    return SRVideoScore(
        video_id, len(centres), model_figures["psnr"], model_figures["ssim"], bicubic_figures["psnr"],
        bicubic_figures["ssim"],
    ), images  # fmt: skip


def _centre_square(frames: torch.Tensor, *, scale: int) -> torch.Tensor:
    """The centre of (N, 3, H, W) frames, at most `MAX_SIDE_PIXELS` a side, sides multiples of `scale`."""
    height, width = frames.shape[-2:]
    side_h = min(height, MAX_SIDE_PIXELS) // scale * scale
    side_w = min(width, MAX_SIDE_PIXELS) // scale * scale
    top, left = (height - side_h) // 2, (width - side_w) // 2
    return frames[..., top : top + side_h, left : left + side_w]


def _side_by_side(*images: torch.Tensor) -> bytes | None:
    """PNG of the same centre crop of each image (3, H, W) in [0, 1], enlarged `CROP_ZOOM` times, in a row."""
    if not images:
        return None
    from PIL import Image  # matplotlib's dependency; needed only here

    height, width = images[0].shape[-2:]
    side_h, side_w = min(height, CROP_PIXELS), min(width, CROP_PIXELS)
    top, left = (height - side_h) // 2, (width - side_w) // 2
    crops = [image[:, top : top + side_h, left : left + side_w] for image in images]
    gap = torch.ones(3, side_h, 2)
    row = torch.cat([part for crop in crops for part in (crop, gap)][:-1], dim=-1)
    pixels = (row.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    picture = Image.fromarray(pixels).resize(
        (pixels.shape[1] * CROP_ZOOM, pixels.shape[0] * CROP_ZOOM), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
