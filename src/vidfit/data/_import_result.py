"""What an import gives: the manifest, the entries it skipped and the segments it clipped, written together."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidfit.data._import_text import Origin
from vidfit.data._manifest import Manifest, save_manifest
from vidfit.io import write_files_atomic

REPORT_COLUMNS = ("file", "line", "id", "reason")


@dataclass(frozen=True)
class ImportNote:
    """An entry left out of the manifest, or a segment changed to fit its video.

    Attributes:
        origin: Where the annotation file says it.
        video_id: The video concerned.
        kind: ``"missing files"``, ``"unreadable"``, ``"clipped"``, ``"dropped"``, ... (the summary counts kinds).
        reason: What happened and why.
    """

    origin: Origin
    video_id: str | None
    kind: str
    reason: str


@dataclass(frozen=True)
class ImportResult:
    """A dataset's annotations as a checked manifest, with what could not go in as it was.

    Attributes:
        format: The importer's name (``"kinetics"``, ``"thumos14"``, ...).
        manifest: The manifest, checked with the loader's own checks.
        skipped: Entries left out (their video is missing or unreadable, ...), in annotation order.
        clipped: Segments that ended past their video's end and were clipped to it (or dropped when they
            started after it).
    """

    format: str
    manifest: Manifest
    skipped: tuple[ImportNote, ...] = ()
    clipped: tuple[ImportNote, ...] = ()

    @staticmethod
    def report_path(out: str | os.PathLike[str]) -> Path:
        """The report beside the manifest `out`: ``<stem>.skipped.csv``."""
        path = Path(out)
        return path.with_name(f"{path.stem}.skipped.csv")

    def save(self, out: str | os.PathLike[str]) -> Path:
        """Writes the manifest (``.yaml``/``.json``) and its report as one set; returns the manifest's path.

        The report lists every skipped entry and clipped segment (``file,line,id,reason``); it is written even
        when empty, so that a report beside a manifest always belongs to it.
        """
        target = Path(out)
        writers: dict[str | os.PathLike[str], Callable[[Path], object]] = {
            target: lambda temp: save_manifest(self.manifest, temp),
            self.report_path(target): self._write_report,
        }
        write_files_atomic(writers)
        return target

    def _write_report(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(REPORT_COLUMNS)
            for note in self.skipped + self.clipped:
                writer.writerow((str(note.origin.file), note.origin.position, note.video_id or "", note.reason))

    def summary(self, out: str | os.PathLike[str] | None = None) -> str:
        """One line: ``kinetics: 9,537 videos, 400 labels, 212 skipped (missing files), see m.skipped.csv``."""
        manifest = self.manifest
        parts = [f"{self.format}: {_count(len(manifest.videos), 'video')}, {_count(len(manifest.labels), 'label')}"]
        if self.skipped:
            kinds = Counter(note.kind for note in self.skipped)
            detail = ", ".join(kind if len(kinds) == 1 else f"{count:,} {kind}" for kind, count in kinds.items())
            parts.append(f"{len(self.skipped):,} skipped ({detail})")
        if self.clipped:
            parts.append(f"{_count(len(self.clipped), 'segment')} clipped to their video's end")
        line = ", ".join(parts)
        if (self.skipped or self.clipped) and out is not None:
            line += f", see {self.report_path(out)}"
        return line


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
