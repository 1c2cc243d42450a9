"""What to change when a training step does not fit in memory: one wording for plans, auto-fit and the OOM guard."""

from __future__ import annotations


def memory_advice(
    *,
    num_frames: int | None,
    precision: str,
    activation_checkpointing: bool,
    batch_size: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> str:
    """The changes that lower a training step's peak memory, for a configuration that did not fit.

    Only the changes that apply are offered, each with the config key to set: a smaller batch above one
    clip, fewer frames above one frame, a smaller image size, checkpointing when it is off, a 16-bit
    precision in fp32. A step that has none left is offered a smaller backbone.

    Args:
        num_frames: Frames per clip of the step that did not fit; None where the model takes a fixed
            number of frames.
        precision: Its precision: ``"32"``, ``"16-mixed"`` or ``"bf16-mixed"``.
        activation_checkpointing: Whether it recomputed activations already.
        batch_size: Its clips per step; None where the batch size is not the user's to lower (auto-fit
            picks it, the OOM guard splits it).
        image_size: Its frames' (height, width); None leaves the image size out (a model of fixed input
            size).

    Returns:
        One clause, e.g. ``"lower data.num_frames (40) or data.image_size (112x112), set
        model.activation_checkpointing: true, or train in trainer.precision: bf16-mixed (or 16-mixed)"``.
    """
    smaller = []
    if batch_size is not None and batch_size > 1:
        smaller.append(f"data.batch_size ({batch_size})")
    if num_frames is not None and num_frames > 1:
        smaller.append(f"data.num_frames ({num_frames})")
    if image_size is not None:
        smaller.append(f"data.image_size ({image_size[0]}x{image_size[1]})")
    changes = []
    if smaller:
        changes.append("lower " + _either(smaller))
    if not activation_checkpointing:
        changes.append("set model.activation_checkpointing: true")
    if precision == "32":
        changes.append("train in trainer.precision: bf16-mixed (or 16-mixed)")
    if not changes:
        return "use a smaller model.backbone"
    return changes[0] if len(changes) == 1 else ", ".join(changes[:-1]) + ", or " + changes[-1]


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
