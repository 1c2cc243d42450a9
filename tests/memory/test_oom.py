import weakref
from collections import namedtuple

import pytest
import torch
from torch import nn

from vidfit.memory import free_memory, is_oom, split_batch

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
