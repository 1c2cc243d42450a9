import pytest

from vidfit.memory._advice import memory_advice


def test_offers_every_change_that_applies() -> None:
    advice = memory_advice(
        num_frames=40, precision="32", activation_checkpointing=False, batch_size=12, image_size=(160, 210)
    )
    assert advice == (
        "lower data.batch_size (12), data.num_frames (40) or data.image_size (160x210), "
        "set model.activation_checkpointing: true, or train in trainer.precision: bf16-mixed (or 16-mixed)"
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"num_frames": 16, "precision": "bf16-mixed", "activation_checkpointing": True, "batch_size": 1},
            "lower data.num_frames (16)",
        ),
        (
            {"num_frames": 16, "precision": "16-mixed", "activation_checkpointing": False},
            "lower data.num_frames (16), or set model.activation_checkpointing: true",
        ),
        (
            {"num_frames": 1, "precision": "bf16-mixed", "activation_checkpointing": True},
            "use a smaller model.backbone",
        ),
    ],
)
def test_leaves_out_what_is_already_done(kwargs: dict[str, object], expected: str) -> None:
    assert memory_advice(**kwargs) == expected  # type: ignore[arg-type]
