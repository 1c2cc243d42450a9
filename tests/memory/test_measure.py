import pytest
import torch
from torch import nn

from vidfit.memory import measure_step
from vidfit.memory._measure import check_budget, largest_fitting_batch


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def test_cpu_step_trains_and_measures() -> None:
    torch.manual_seed(0)
    model = _model()
    before = model[0].weight.detach().clone()
    result = measure_step(model, lambda: torch.randn(8, 16), device="cpu", precision="32", optimizer="adamw", steps=2)
    assert not result.oom and result.device == "cpu"
    assert result.peak_bytes > 0
    assert result.seconds_per_step is not None and result.seconds_per_step > 0
    assert not torch.equal(model[0].weight, before)
    assert all(p.grad is None for p in model.parameters())


def test_cpu_bf16_step() -> None:
    result = measure_step(_model(), lambda: torch.randn(4, 16), device="cpu", precision="bf16-mixed", optimizer="sgd")
    assert not result.oom


def test_oom_is_reported_and_other_errors_propagate() -> None:
    class Fails(nn.Module):
        def __init__(self, exc: Exception) -> None:
            super().__init__()
            self.linear = nn.Linear(2, 2)
            self.exc = exc

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise self.exc

    oom = measure_step(
        Fails(torch.OutOfMemoryError("out of memory")),
        lambda: torch.zeros(1, 2),
        device="cpu",
        precision="32",
        optimizer="adam",
    )
    assert oom.oom and oom.seconds_per_step is None
    with pytest.raises(RuntimeError, match="shape"):
        measure_step(
            Fails(RuntimeError("shape")), lambda: torch.zeros(1, 2), device="cpu", precision="32", optimizer="adam"
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "16"}, "precision='16' is not one of"),
        ({"steps": 0}, "steps=0 is not at least 1"),
        ({"memory_cap_bytes": 10**9}, "memory_cap_bytes needs a CUDA device, not 'cpu'"),
    ],
)
def test_measure_rejects(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"device": "cpu", "precision": "32", "optimizer": "sgd", **kwargs}
    with pytest.raises(ValueError, match=message):
        measure_step(_model(), lambda: torch.zeros(1, 16), **args)  # type: ignore[arg-type]


@pytest.mark.cuda
def test_cuda_cap_turns_a_large_step_into_oom() -> None:
    model = nn.Linear(4096, 4096)
    small = measure_step(model, lambda: torch.randn(8, 4096), device="cuda", precision="16-mixed", optimizer="adamw")
    assert not small.oom and small.peak_bytes > 4 * 4096 * 4096 * 4
    capped = measure_step(
        model,
        lambda: torch.randn(8, 4096),
        device="cuda",
        precision="16-mixed",
        optimizer="adamw",
        memory_cap_bytes=small.peak_bytes // 2,
    )
    assert capped.oom
    assert torch.cuda.get_per_process_memory_fraction() == 1.0


def test_a_budget_above_the_device_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**30, 8 * 2**30))
    check_budget(8 * 2**30, device="cuda:0", label="budget '8GiB'")
    with pytest.raises(ValueError, match=r"budget '9GiB' \(9\.00 GiB\) is above the total memory of cuda:0, 8\.00 GiB"):
        check_budget(9 * 2**30, device="cuda:0", label="budget '9GiB'")


@pytest.mark.cuda
def test_cuda_cap_above_the_device_is_refused() -> None:
    total = torch.cuda.mem_get_info()[1]
    with pytest.raises(ValueError, match=r"memory_cap_bytes=\d+ .* is above the total memory of cuda"):
        measure_step(
            _model(),
            lambda: torch.zeros(1, 16),
            device="cuda",
            precision="32",
            optimizer="sgd",
            memory_cap_bytes=total + 1,
        )


class _Fake:
    """Peak grows 10 bytes per sample over 100; over 1000 bytes is an out-of-memory error."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, batch_size: int) -> int | None:
        self.calls.append(batch_size)
        peak = 100 + 10 * batch_size
        return None if peak > 1000 else peak


def test_search_finds_the_largest_fit_and_measures_each_size_once() -> None:
    fake = _Fake()
    fit = largest_fitting_batch(fake, budget_bytes=800, margin_fraction=0.1)
    assert fit.limit_bytes == 720
    assert fit.batch_size == 62 and fit.peak_bytes == 720
    assert fake.calls[:7] == [1, 2, 4, 8, 16, 32, 64]
    assert len(fake.calls) == len(set(fake.calls)) == len(fit.measured)


def test_search_treats_oom_as_not_fitting_and_stops_at_max_batch() -> None:
    assert largest_fitting_batch(_Fake(), budget_bytes=10**6, margin_fraction=0.0).batch_size == 90
    assert largest_fitting_batch(_Fake(), budget_bytes=10**6, max_batch=50).batch_size == 50
    assert largest_fitting_batch(_Fake(), budget_bytes=10**6, max_batch=1).batch_size == 1


def test_search_when_nothing_fits() -> None:
    fit = largest_fitting_batch(_Fake(), budget_bytes=100)
    assert fit.batch_size is None and fit.peak_bytes is None and fit.measured == ((1, 110),)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"budget_bytes": 0}, "budget_bytes=0"), ({"budget_bytes": 1, "margin_fraction": 1.0}, "margin_fraction=1.0")],
)
def test_search_rejects(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        largest_fitting_batch(_Fake(), **kwargs)  # type: ignore[arg-type]
