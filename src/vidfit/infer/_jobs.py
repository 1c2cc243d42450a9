"""The per-video job runner of every prediction front-end: progress, and one video's failure never the run's."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from rich.progress import track

from vidfit.memory import free_memory

_Job = TypeVar("_Job")
_Result = TypeVar("_Result")
_Key = TypeVar("_Key", bound=Hashable)


def run_jobs(
    jobs: Sequence[_Job],
    run: Callable[[_Job], _Result],
    *,
    key: Callable[[_Job], _Key],
    description: str,
    progress: bool = True,
) -> tuple[dict[_Key, _Result], dict[_Key, str]]:
    """`run` on each job, in order: the results, and why the others failed, both by ``key(job)``.

    Any error of one video is that video's failure, never the run's: under torchrun every rank must
    reach the gather that follows, and one bad file should not cost the other videos' results.
    KeyboardInterrupt is no Exception: it still ends the run.
    """
    results: dict[_Key, _Result] = {}
    failures: dict[_Key, str] = {}
    for job in track(jobs, description=description, disable=not progress):
        try:
            results[key(job)] = run(job)
            continue
        except Exception as error:
            failures[key(job)] = f"{type(error).__name__}: {error}"
        # Out of the except block, a failed pass's tensors (an OOM's, say) are unreachable and can be freed.
        free_memory()
    return results, failures
