"""Problems found in a dataset, reported all at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vidfit.io._sources import is_url


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        video_id: The video concerned, or None for the manifest as a whole.
        file: The file concerned (the manifest, a video or a keypoint file).
        field: The manifest field or property at fault, e.g. ``"views.left"`` or ``"duration_seconds"``.
        message: What is wrong and what is allowed.
    """

    video_id: str | None
    file: Path | str  # a str for a URL
    field: str
    message: str

    def __str__(self) -> str:
        video = f"video {self.video_id!r}: " if self.video_id is not None else ""
        return f"{video}{self.file}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The problem as JSON-ready values (the file as a string)."""
        return {**asdict(self), "file": str(self.file)}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Problem:
        """The problem `to_dict` wrote."""
        file = document["file"]
        return cls(**{**document, "file": file if is_url(file) else Path(file)})


class ManifestError(ValueError):
    """Every problem found in a manifest or its files, one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in the dataset:\n{lines}")
