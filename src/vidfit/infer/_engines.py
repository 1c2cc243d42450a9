"""Where per-video jobs run: in this process (``local``) or on a Ray cluster (``ray``), chosen in one place.

Both engines give the same answer as `run_jobs`: results and failures by key, one video's error never the
run's. On Ray, stateless work (transcoding) runs as one CPU task per job; work that loads something first
(a model) runs on actors that load it once each, with ``num_gpus`` per actor where the cluster has GPUs. A
job whose worker dies (killed, out of memory, node lost) is retried by Ray; its outputs stay whole because
every file vidfit writes is renamed into place only once complete (`vidfit.io.write_text_atomic`,
`VideoWriter`), so a retry overwrites nothing half-written and adds no duplicate.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

from rich.progress import Progress

from vidfit.infer._jobs import run_jobs
from vidfit.io import sigterm_as_interrupt

_Job = TypeVar("_Job")
_Loaded = TypeVar("_Loaded")
_Result = TypeVar("_Result")
_Key = TypeVar("_Key", bound=Hashable)

EngineName = Literal["local", "ray"]
# A job is tried again this many times after its worker died; an exception it raises is its failure at once.
MAX_RETRIES = 3
RAY_INSTALL = "pip install 'vidfit[ray]'"
# How long interrupted jobs may take to unwind (drop their partial files) before the cluster is shut down.
_CANCEL_SECONDS = 10.0


@dataclass(frozen=True)
class Work(Generic[_Job, _Loaded, _Result, _Key]):
    """What each job runs: ``run(load(), job)``, `load` called once per worker (None: nothing to load).

    `load` and `run` must be picklable (module-level functions, `functools.partial`) for Ray.

    Attributes:
        run: One job, given what `load` returned (None without `load`).
        key: Names a job's result and failure.
        description: The progress bar's label.
        load: Builds what every job of a worker shares, such as a model on its device.
    """

    run: Callable[[_Loaded, _Job], _Result]
    key: Callable[[_Job], _Key]
    description: str
    load: Callable[[], _Loaded] | None = None


@dataclass(frozen=True)
class Engine:
    """Where jobs run.

    Attributes:
        name: ``"local"`` (this process) or ``"ray"`` (a Ray cluster).
        ray_address: The cluster to join; None for ``RAY_ADDRESS``, else a local cluster started for the run.
        num_gpus_per_actor: GPUs of each Ray actor that loads a model; None: 1 where the cluster has GPUs, else 0.
    """

    name: EngineName = "local"
    ray_address: str | None = None
    num_gpus_per_actor: float | None = None

    def __post_init__(self) -> None:
        if self.name not in _ENGINES:
            raise ValueError(f"engine={self.name!r} is not one of {', '.join(map(repr, _ENGINES))}")
        if self.name == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError(f"engine='ray' needs Ray, which is not installed: {RAY_INSTALL}")
        if self.ray_address is not None and self.name != "ray":
            raise ValueError(f"ray_address={self.ray_address!r} needs engine='ray' (engine={self.name!r})")
        if self.num_gpus_per_actor is not None and self.num_gpus_per_actor < 0:
            raise ValueError(f"num_gpus_per_actor={self.num_gpus_per_actor!r} must be >= 0")

    def run(
        self, jobs: Sequence[_Job], work: Work[_Job, Any, _Result, _Key], *, progress: bool = True
    ) -> tuple[dict[_Key, _Result], dict[_Key, str]]:
        """Every job of `jobs`: the results, and why the others failed, both by ``work.key(job)`` in job order."""
        results, failures = _ENGINES[self.name](self, list(jobs), work, progress)
        order = [work.key(job) for job in jobs]
        return {k: results[k] for k in order if k in results}, {k: failures[k] for k in order if k in failures}


def _local(engine: Engine, jobs: list[Any], work: Work[Any, Any, Any, Any], progress: bool) -> tuple[dict, dict]:
    loaded = work.load() if work.load is not None else None
    return run_jobs(
        jobs, functools.partial(work.run, loaded), key=work.key, description=work.description, progress=progress
    )


def import_ray() -> Any:
    """The `ray` module; ImportError naming the install command without it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"engine 'ray' needs Ray, which is not installed: {RAY_INSTALL}") from error
    return ray


def _ray(engine: Engine, jobs: list[Any], work: Work[Any, Any, Any, Any], progress: bool) -> tuple[dict, dict]:
    ray = import_ray()
    started = not ray.is_initialized()
    with sigterm_as_interrupt():  # the handler before Ray's is the one put back
        if started:
            # With no address Ray reads RAY_ADDRESS, and without it starts a cluster on this machine.
            ray.init(address=engine.ray_address, log_to_driver=False)
        # Over ray.init's handler, which answers SIGTERM with a crash dump and SIGABRT (exit 134): SIGTERM
        # stops the run as Ctrl-C does, its jobs cancelled so that they drop their partial files.
        with sigterm_as_interrupt(force=True):
            try:
                actors = None if work.load is None else _start_actors(ray, engine, len(jobs), work)
                submit = _submit_tasks(ray, work)
                return _collect(ray, jobs, submit=submit, actors=actors, work=work, progress=progress)
            finally:
                if started:
                    ray.shutdown()


def _attempt(run: Callable[[Any, Any], Any], loaded: Any, job: Any) -> tuple[bool, Any]:
    """One job in a Ray worker: its result, or its error as text (an error of the video, never retried)."""
    try:
        return True, run(loaded, job)
    except Exception as error:
        return False, f"{type(error).__name__}: {error}"


class _Worker:
    """A Ray actor: loads once, then runs jobs one at a time."""

    def __init__(self, load: Callable[[], Any], run: Callable[[Any, Any], Any]) -> None:
        self.loaded, self.run = load(), run

    def attempt(self, job: Any) -> tuple[bool, Any]:
        return _attempt(self.run, self.loaded, job)


def _submit_tasks(ray: Any, work: Work[Any, Any, Any, Any]) -> Callable[[Any], Any]:
    """One CPU task per job (per view for transcoding), retried when its worker dies; Ray queues them all."""
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_attempt)
    return lambda job: (task.remote(work.run, None, job), None)


def _start_actors(ray: Any, engine: Engine, num_jobs: int, work: Work[Any, Any, Any, Any]) -> list[Any]:
    """Actors that each load once, as many as the cluster holds; a dead one restarts, loading again."""
    resources = ray.cluster_resources()
    num_gpus = engine.num_gpus_per_actor
    if num_gpus is None:
        num_gpus = 1.0 if resources.get("GPU", 0) > 0 else 0.0
    slots = resources.get("GPU", 0) / num_gpus if num_gpus else resources.get("CPU", 1)
    actor = ray.remote(num_cpus=1, num_gpus=num_gpus, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)(_Worker)
    return [actor.remote(work.load, work.run) for _ in range(max(1, min(num_jobs, int(slots))))]


def _collect(
    ray: Any, jobs: list[Any], *, submit: Callable[..., tuple[Any, Any]], actors: list[Any] | None,
    work: Work[Any, Any, Any, Any], progress: bool,
) -> tuple[dict, dict]:  # fmt: skip
    """Results as jobs finish, feeding the progress bar; a job whose retries ran out is its video's failure.

    With actors, each holds at most two jobs, the next one queued behind the running one, and gets more as
    it finishes them, so that a long video on one actor does not leave the others waiting.
    """
    results: dict[Hashable, Any] = {}
    failures: dict[Hashable, str] = {}
    queue = iter(jobs)
    pending: dict[Any, tuple[Any, Any]] = {}

    def feed(actor: Any) -> None:
        job = next(queue, None)
        if job is not None:
            ref, _ = submit(job) if actor is None else (actor.attempt.remote(job), None)
            pending[ref] = (job, actor)

    for actor in actors or [None] * len(jobs):
        feed(actor)
        if actors:
            feed(actor)
    with Progress(disable=not progress) as bar:
        task = bar.add_task(work.description, total=len(jobs))
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job, actor = pending.pop(done[0])
                ok, value = _outcome(ray, done[0])
                (results if ok else failures)[work.key(job)] = value
                bar.advance(task)
                if actors:
                    feed(actor)
        except BaseException:  # Ctrl-C, SIGTERM: the running jobs stop too, and clean up after themselves
            _cancel(ray, list(pending), actors or [])
            raise
    return results, failures


def _outcome(ray: Any, ref: Any) -> tuple[bool, Any]:
    """A finished job's result, or why it failed: its error, or its worker's death once retries ran out."""
    try:
        return cast(tuple[bool, Any], ray.get(ref))
    except ray.exceptions.RayError as error:
        return False, f"{type(error).__name__}: retried {MAX_RETRIES} times: {_first_line(error)}"


def _cancel(ray: Any, running: list[Any], actors: list[Any]) -> None:
    """Interrupts the jobs still running, waits for them to unwind (a while at most), then ends the actors.

    A cancelled job gets KeyboardInterrupt in its worker, so a `VideoWriter` there removes its temp file;
    one killed outright could not (`vidfit.apps.prepare` removes what such attempts leave).
    """
    for ref in running:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=False)
    with contextlib.suppress(Exception):
        ray.wait(running, num_returns=len(running), timeout=_CANCEL_SECONDS)
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)


def _first_line(error: Exception) -> str:
    return next(iter(str(error).strip().splitlines()), type(error).__name__)


_ENGINES: dict[str, Callable[[Engine, list[Any], Work[Any, Any, Any, Any], bool], tuple[dict, dict]]] = {
    "local": _local,
    "ray": _ray,
}
ENGINE_NAMES = tuple(_ENGINES)
