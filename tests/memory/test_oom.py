import dataclasses
import weakref
from collections import namedtuple

import pytest
import torch
from torch import nn

from vidfit.memory import free_memory, is_oom, retry_on_oom
from vidfit.memory._oom import split_batch

Pair = namedtuple("Pair", ["left", "right"])


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
        (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
        (RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"), True),
        (RuntimeError("shape mismatch"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_is_oom(exc: BaseException, expected: bool) -> None:
    assert is_oom(exc) is expected


def test_free_memory_collects_cycles() -> None:
    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    ref = weakref.ref(node)
    del node
    free_memory()
    assert ref() is None


def test_split_covers_every_sample_once_in_order() -> None:
    batch = {
        "video": torch.arange(7 * 2).reshape(7, 2),
        "views": [torch.arange(7), torch.arange(7) + 100],
        "clip_ids": [f"clip{i}" for i in range(7)],
        "meta": {"fps": torch.arange(7.0), "source": "demo"},
        "scale": torch.tensor(0.5),
        "pair": Pair(torch.arange(7), torch.arange(7)),
    }
    parts = split_batch(batch, 3)
    assert [len(p["clip_ids"]) for p in parts] == [3, 2, 2]
    assert torch.equal(torch.cat([p["video"] for p in parts]), batch["video"])
    assert torch.equal(torch.cat([p["views"][1] for p in parts]), batch["views"][1])
    assert [clip_id for p in parts for clip_id in p["clip_ids"]] == batch["clip_ids"]
    assert torch.equal(torch.cat([p["meta"]["fps"] for p in parts]), batch["meta"]["fps"])
    assert all(p["meta"]["source"] == "demo" and p["scale"] is batch["scale"] for p in parts)
    assert all(isinstance(p["pair"], Pair) and p["pair"].left.shape == p["video"].shape[:1] for p in parts)


@pytest.mark.parametrize(("size", "parts"), [(1, 1), (5, 5), (8, 3), (9, 2)])
def test_split_sizes_differ_by_at_most_one(size: int, parts: int) -> None:
    sizes = [len(t) for t in split_batch(torch.arange(size), parts)]
    assert sum(sizes) == size and len(sizes) == parts and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize(
    ("batch", "parts", "message"),
    [
        (torch.arange(4), 5, "num_micro_batches=5 is not between 1 and the batch size 4"),
        (torch.arange(4), 0, "num_micro_batches=0"),
        ({"ids": ["a", "b"]}, 1, "holds no tensor to split: dict"),
        ({"x": torch.zeros(4), "y": torch.zeros(3)}, 2, r"batch\['y'\] has shape \(3,\), not 4 samples"),
        ({"x": torch.zeros(4), "ids": ["a", "b"]}, 2, r"batch\['ids'\] is a list of 2 values but the batch has 4"),
    ],
)
def test_split_rejects(batch: object, parts: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_batch(batch, parts)


def test_micro_batch_gradients_equal_the_whole_batch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1))
    batch = {"x": torch.randn(7, 6), "y": torch.randn(7, 1)}

    def loss_of(part: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(model(part["x"]), part["y"])

    loss_of(batch).backward()
    whole = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    model.zero_grad()
    for part in split_batch(batch, 3):
        (loss_of(part) * len(part["x"]) / len(batch["x"])).backward()
    for expected, param in zip(whole, model.parameters(), strict=True):
        torch.testing.assert_close(param.grad, expected)


def test_retry_on_oom_frees_shrinks_and_reports_the_setting_that_ran() -> None:
    tried: list[int] = []

    def run(size: int) -> str:
        tried.append(size)
        if size > 2:
            raise RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
        return f"ran at {size}"

    outcome = retry_on_oom(run, 8, shrink=lambda size: size // 2, advice=lambda size: "unused")
    assert tried == [8, 4, 2]
    assert (outcome.result, outcome.setting, outcome.oom_retries) == ("ran at 2", 2, 2)


def test_retry_on_oom_gives_up_with_advice_and_passes_other_errors() -> None:
    def never_fits(size: int) -> None:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB")

    with pytest.raises(torch.OutOfMemoryError, match=r"^nothing below 1: lower the frame size$") as caught:
        retry_on_oom(
            never_fits, 2, shrink=lambda s: s - 1 or None, advice=lambda s: f"nothing below {s}: lower the frame size"
        )
    assert "DefaultCPUAllocator" in str(caught.value.__cause__)
    assert caught.value.__cause__ is not None and caught.value.__cause__.__traceback__ is None

    def broken(size: int) -> None:
        raise RuntimeError("shape mismatch")

    shrunk: list[int] = []
    with pytest.raises(RuntimeError, match="shape mismatch"):
        retry_on_oom(broken, 4, shrink=lambda s: shrunk.append(s) or s // 2, advice=str)
    assert shrunk == []


@dataclasses.dataclass(frozen=True)
class _Clips:
    x: torch.Tensor
    names: list[str]
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.names) not in (0, len(self.x)):
            raise ValueError("names must match x")


@dataclasses.dataclass(frozen=True)
class _Pair:
    x: torch.Tensor
    names: list[str]


def test_split_slices_every_field_of_a_typed_batch() -> None:
    clips = _Clips(torch.arange(5), [{"id": i} for i in range(5)])  # type: ignore[misc]
    parts = split_batch(clips, 2)
    assert all(isinstance(p, _Clips) and p.mask is None for p in parts)
    assert [p.x.tolist() for p in parts] == [[0, 1, 2], [3, 4]]
    assert [[n["id"] for n in p.names] for p in parts] == [[0, 1, 2], [3, 4]]  # type: ignore[index]
    assert [p.names for p in split_batch(_Clips(torch.arange(3), []), 3)] == [[], [], []]
    with pytest.raises(ValueError, match=r"batch\.names holds 2 entries but the batch has 5 samples"):
        split_batch(_Pair(torch.arange(5), ["a", "b"]), 2)
