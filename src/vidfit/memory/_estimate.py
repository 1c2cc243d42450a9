"""Estimate of one training step's peak memory without allocating it.

The model is built on the meta device (no memory, no data), then its parameters and buffers are replaced
by fake tensors (``torch._subclasses.fake_tensor.FakeTensorMode``) that carry the target device, and the
inputs and the forward pass run on fake tensors too. Building on meta rather than under the fake mode
matters: initialisers such as ``nn.init.trunc_normal_`` (swin3d_t's and mvit_v2_s's relative position
tables) read tensor values, which fake tensors refuse, while on meta they are skipped. Plain
``torch.device("meta")`` tensors will not do for the forward pass under mixed precision: autocast dispatches
on the device of a tensor and a meta tensor has no autocast key, so ``torch.autocast`` leaves it in fp32
(the test suite checks this). A fake CUDA tensor does carry the CUDA autocast key, so the real CUDA
autocast policy decides which ops run in half precision and which stay in fp32, even without a GPU.

Activation bytes are the bytes autograd keeps for backward: every tensor handed to
``saved_tensors_hooks`` during the forward pass and the loss. Several saved tensors often share one
storage (a ReLU saves its output, the next Linear saves the same tensor as its input; a view saves its
base), and fake tensors have no data pointers, so saved tensors are deduplicated by the identity of their
storage object, which PyTorch keeps unique per storage while it is alive (the estimate holds every seen
storage alive until it ends). A saved tensor counts its whole storage, since a view keeps it all alive.
Storages of parameters and buffers are not activations: autocast's half-precision copies of weights are
(they are held until the forward pass ends).

Scaled-dot-product attention runs as the fused kernels a GPU has (flash or memory-efficient attention, which
keep no attention matrix for backward), not the math fallback fake tensors would otherwise take
(`vidfit.memory._attention`).

Activation checkpointing is the model's business: inside a checkpointed region
``torch.utils.checkpoint`` replaces the saved-tensor hooks with its own, so what it recomputes is not
counted, while the region's inputs, which it keeps to recompute from, are (PyTorch 2.14 saves them
through the surrounding hooks; versions that keep them only in a closure would leave them out). In
backward each region runs again and holds its activations until its gradients are through, so the peak
has the largest region's activations on top: while an estimate runs, each call of
``torch.utils.checkpoint.checkpoint`` runs its region once more under hooks of its own, which count what the
recomputation keeps (storages counted already left out); the largest region is `recompute_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.utils.checkpoint
from torch import nn
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
    UnsupportedOperatorException,
)
from torch.utils._python_dispatch import TorchDispatchMode

from vidfit.memory._attention import FusedAttention
from vidfit.memory._step import (
    LossFn,
    OptimizerName,
    Precision,
    autocast_dtype,
    autocast_state,
    call_model,
    check_choice,
    check_step_choices,
    optimizer_state_copies,
    sum_loss,
)

DeviceType = Literal["cuda", "cpu"]

ESTIMATE_NOTE = (
    "estimate, not a measurement: parameters + gradients + optimizer state + saved activations + the largest "
    "single tensor of the forward pass + the largest checkpointed region's recomputed activations; it leaves out "
    "the caching allocator's rounding and fragmentation, "
    "cuDNN and cuBLAS workspaces, the CUDA context, and the gradients the OOM guard stashes while it redoes "
    "a batch, so a measured peak can be higher"
)


class UnestimableModelError(ValueError):
    """The model's forward pass needs tensor values, which the fake tensors of an estimate do not have."""


@dataclass(frozen=True)
class StepEstimate:
    """Peak memory of one training step, estimated on fake tensors.

    ``total_bytes = parameters_bytes + gradients_bytes + optimizer_state_bytes + activations_bytes +
    transient_bytes + recompute_bytes``. Backward starts with every saved activation alive plus a gradient as large as
    the largest forward tensor, and ends with every gradient alive, while the optimizer state lives
    throughout; the sum is an estimate of that peak, not a bound: `note` says what it leaves out.

    Attributes:
        parameters_bytes: Parameters and buffers.
        gradients_bytes: One gradient per trainable parameter, in the parameter's dtype.
        optimizer_state_bytes: Adam/AdamW keep two tensors per trainable parameter, SGD with momentum one.
        activations_bytes: Storages autograd saves for backward, deduplicated.
        transient_bytes: The largest single tensor an op produced in the forward pass, e.g. the logits.
        total_bytes: The sum above.
        precision: The precision estimated.
        optimizer: The optimizer estimated.
        recompute_bytes: What the largest activation-checkpointed region keeps while backward recomputes it
            (0 without checkpointing).
        note: What the figure is and is not.
    """

    parameters_bytes: int
    gradients_bytes: int
    optimizer_state_bytes: int
    activations_bytes: int
    transient_bytes: int
    total_bytes: int
    precision: Precision
    optimizer: OptimizerName
    recompute_bytes: int = 0
    note: str = ESTIMATE_NOTE


def estimate_step_memory(
    model_factory: Callable[[], nn.Module],
    input_factory: Callable[[], Any],
    *,
    optimizer: OptimizerName = "adamw",
    precision: Precision = "32",
    device_type: DeviceType = "cuda",
    loss_fn: LossFn | None = None,
) -> StepEstimate:
    """Estimates a training step's peak memory without allocating the model, inputs or activations.

    Args:
        model_factory: Builds the model from scratch (it runs on the meta device, so it cannot load real
            weights or read tensor values). Checkpointing and the like are set up by the factory.
        input_factory: Builds the inputs: a tuple or list of positional arguments, a dict of keyword
            arguments, or a single argument.
        optimizer: The optimizer whose state is counted.
        precision: ``"32"``, or mixed precision with fp32 weights under autocast.
        device_type: The device whose autocast policy applies.
        loss_fn: Maps the model output to a scalar loss; by default the sum of its floating-point tensors.

    Returns:
        The estimate, by component.

    Raises:
        UnestimableModelError: The forward pass needs tensor values (e.g. ``.item()``, or an output shape
            that depends on the data); measure the step on a GPU (`measure_step`) instead.
    """
    check_step_choices(precision=precision, optimizer=optimizer)
    check_choice("device_type", device_type, get_args(DeviceType))
    with torch.device("meta"):
        model = model_factory()
    mode = FakeTensorMode()
    with mode, torch.device(device_type):
        _fake_state(model)
        inputs = input_factory()
    state = [*model.parameters(), *model.buffers()]
    trainable_bytes = sum(_nbytes(p) for p in model.parameters() if p.requires_grad)
    saved = _SavedStorages(exclude=state)
    largest = _LargestOutput()
    recomputed = _RecomputedRegions(saved)
    with (
        mode,
        torch.device(device_type),
        largest,
        recomputed,
        FusedAttention(),
        torch.autograd.graph.saved_tensors_hooks(saved.pack, _unpack),
        autocast_state(device_type, autocast_dtype(precision)),
    ):
        try:
            (loss_fn or sum_loss)(call_model(model, inputs))
        except (DataDependentOutputException, DynamicOutputShapeException, UnsupportedOperatorException) as error:
            raise UnestimableModelError(
                f"{type(model).__name__} cannot be estimated on fake tensors: {error} needs tensor values; "
                "measure its training step on a GPU instead"
            ) from error
    parameters_bytes = sum(_nbytes(t) for t in state)
    optimizer_state_bytes = optimizer_state_copies(optimizer) * trainable_bytes
    gradients_bytes = trainable_bytes
    activations = saved.total_bytes + largest.max_bytes + recomputed.max_bytes
    return StepEstimate(
        parameters_bytes=parameters_bytes,
        gradients_bytes=gradients_bytes,
        optimizer_state_bytes=optimizer_state_bytes,
        activations_bytes=saved.total_bytes,
        transient_bytes=largest.max_bytes,
        total_bytes=parameters_bytes + gradients_bytes + optimizer_state_bytes + activations,
        precision=precision,
        optimizer=optimizer,
        recompute_bytes=recomputed.max_bytes,
    )


def _fake_state(model: nn.Module) -> None:
    """Replaces the meta parameters and buffers with fake ones of the same shapes, strides and dtypes.

    Run under the fake mode and the target device. A tensor shared by several modules stays shared.
    """
    fakes: dict[int, torch.Tensor] = {}

    def fake(tensor: torch.Tensor, *, parameter: bool) -> torch.Tensor:
        if id(tensor) not in fakes:
            empty = torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype)
            fakes[id(tensor)] = nn.Parameter(empty, requires_grad=tensor.requires_grad) if parameter else empty
        return fakes[id(tensor)]

    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            setattr(module, name, fake(param, parameter=True))
        for name, buffer in module.named_buffers(recurse=False):
            setattr(module, name, fake(buffer, parameter=False))


class _SavedStorages:
    """Pack hook that sums the bytes of distinct storages saved for backward."""

    def __init__(self, *, exclude: list[torch.Tensor]) -> None:
        # Values keep the storages alive so that no id is reused by another storage while counting.
        self._seen: dict[int, torch.UntypedStorage] = {}
        for tensor in exclude:
            storage = tensor.untyped_storage()
            self._seen[id(storage)] = storage
        self.total_bytes = 0

    def skip(self, other: _SavedStorages) -> None:
        """Counts none of the storages `other` has seen."""
        self._seen.update(other._seen)

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if id(storage) not in self._seen:
            self._seen[id(storage)] = storage
            self.total_bytes += storage.nbytes()
        return tensor


def _unpack(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


# Keywords of `torch.utils.checkpoint.checkpoint` itself; the others are the region's.
_CHECKPOINT_OPTIONS = ("use_reentrant", "context_fn", "determinism_check", "debug", "preserve_rng_state")


class _RecomputedRegions:
    """Runs each checkpointed region once more and keeps the largest bytes it saves (see the module docstring).

    ``torch.utils.checkpoint.checkpoint`` is replaced while the estimate runs, so it must be called through the
    module (vidfit's backbones do); a region called through another reference is not probed.
    """

    def __init__(self, saved: _SavedStorages) -> None:
        self._saved = saved
        self._original: Callable[..., Any] | None = None
        self.max_bytes = 0

    def __enter__(self) -> _RecomputedRegions:
        self._original = torch.utils.checkpoint.checkpoint
        torch.utils.checkpoint.checkpoint = self._checkpoint  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        torch.utils.checkpoint.checkpoint = self._original  # type: ignore[assignment]

    def _checkpoint(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self._original is not None
        out = self._original(function, *args, **kwargs)
        if torch.is_grad_enabled():
            region = _SavedStorages(exclude=[])
            region.skip(self._saved)  # inputs kept by the checkpoint and weights are counted already
            with torch.autograd.graph.saved_tensors_hooks(region.pack, _unpack):
                function(*args, **{key: value for key, value in kwargs.items() if key not in _CHECKPOINT_OPTIONS})
            self.max_bytes = max(self.max_bytes, region.total_bytes)
        return out


class _LargestOutput(TorchDispatchMode):
    """Records the largest new storage any op allocates; views and in-place results reuse an input's."""

    def __init__(self) -> None:
        super().__init__()
        self.max_bytes = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in _shallow_tensors([*args, *(kwargs or {}).values()])}
        for tensor in _shallow_tensors(out if isinstance(out, tuple | list) else [out]):
            storage = tensor.untyped_storage()
            if id(storage) not in inputs:
                self.max_bytes = max(self.max_bytes, storage.nbytes())
        return out


def _shallow_tensors(items: list[Any] | tuple[Any, ...]) -> list[torch.Tensor]:
    """Tensors among the items and inside list or tuple items (aten ops take at most one level, e.g. cat)."""
    found: list[torch.Tensor] = []
    for item in items:
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, tuple | list):
            found.extend(t for t in item if isinstance(t, torch.Tensor))
    return found


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()
