"""Video-level labels: Kinetics CSVs, MMAction2's ``path label`` lists, class-folder trees, multi-view folders."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vidfit.data._import_build import MISSING_CHOICES, Draft, Missing, Options, finish_import
from vidfit.data._import_result import ImportNote, ImportResult
from vidfit.data._import_text import (
    SPLIT_NAMES,
    Origin,
    Problems,
    as_paths,
    check_choice,
    parse_seconds,
    read_csv,
    read_lines,
    require_columns,
    split_from_name,
)
from vidfit.data._import_videos import VIDEO_SUFFIXES, VideoFiles, folder_key, is_video
from vidfit.data._manifest import Manifest, VideoEntry

_KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")


def import_kinetics(
    csv_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    video_dir: str | os.PathLike[str],
    missing: Missing = "skip",
    check_videos: bool = False,
    view_name: str = "front",
) -> ImportResult:
    """A manifest from Kinetics-400/600/700 CSVs (``label,youtube_id,time_start,time_end,split[,is_cc]``).

    Train, validation and test CSVs go in one call. Each row is a clip: the downloaders'
    ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere under `video_dir` (flat, or in class folders
    spelled with spaces or MMAction2's underscores), else the untrimmed source ``<youtube_id>.<ext>`` with
    the row's ``[time_start, time_end)`` as the clip's range (read from the source, nothing transcoded).
    The labels are those of the train rows (of every labelled row when there is no train split), sorted;
    a CSV without a label column (the test CSVs) gives unlabelled clips. The split is the ``split``
    column's (``validate`` -> ``val``), else the file name's.

    Args:
        csv_paths: The CSVs.
        video_dir: The data root.
        missing: ``"skip"`` clips not found (listed in the report) or report them as an ``"error"``.
        check_videos: Also read each clip's packet index, skipping (or reporting) the unreadable ones.
        view_name: Name of the single view.
    """
    check_choice("missing", missing, MISSING_CHOICES)
    root, problems = Path(video_dir).resolve(), Problems()
    clips: list[tuple[Draft, str, float, float]] = []
    for path in as_paths(csv_paths):
        header, rows = read_csv(path, problems)
        if require_columns(path, header, _KINETICS_COLUMNS, problems):
            clips += [clip for line, row in rows if (clip := _kinetics_clip(row, Origin(path, line), problems))]
    files = VideoFiles(root)
    for draft, youtube_id, start, end in clips:
        _find_clip(draft, youtube_id, start, end, files)
    drafts = [clip[0] for clip in clips]
    trained = sorted({d.label for d in drafts if d.label is not None and d.split == "train"})
    labels = trained or sorted({d.label for d in drafts if d.label is not None})
    options = Options("kinetics", root, view_name, missing, probe=check_videos, labels=labels)
    return finish_import(drafts, problems, options)


def _kinetics_clip(row: dict[str, str], origin: Origin, problems: Problems) -> tuple[Draft, str, float, float] | None:
    youtube_id = row["youtube_id"]
    try:
        start, end = parse_seconds(row["time_start"]), parse_seconds(row["time_end"])
    except ValueError as error:
        problems.add(origin, f"time_start/time_end: {error}", video_id=youtube_id or None)
        return None
    if not start < end:
        problems.add(origin, f"the clip [{start:g}, {end:g}) s is inverted or empty", video_id=youtube_id or None)
        return None
    if not youtube_id:
        problems.add(origin, "youtube_id is empty")
        return None
    written = row.get("split", "")
    split = SPLIT_NAMES.get(written.lower(), written) if written else split_from_name(origin.file)
    clip_id = f"{youtube_id}_{int(start):06d}_{int(end):06d}"
    return Draft(clip_id, origin, split=split, label=row.get("label") or None), youtube_id, start, end


def _find_clip(draft: Draft, youtube_id: str, start: float, end: float, files: VideoFiles) -> None:
    """The trimmed clip, preferring its class folder; else the untrimmed source video with the clip's range."""
    key = folder_key(draft.label) if draft.label else None

    def in_class_folder(path: Path) -> int:
        return 0 if key is not None and folder_key(path.parent.name) == key else 1

    draft.looked_for = f"{draft.id}.<ext> or the source video {youtube_id}.<ext>"
    draft.video = files.find(draft.id, prefer=in_class_folder, any_case=False)
    if draft.video is None:
        draft.video = files.find(youtube_id, prefer=in_class_folder, any_case=False)
        if draft.video is not None:
            draft.start_seconds, draft.end_seconds = start, end


def import_video_list(
    list_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    video_dir: str | os.PathLike[str],
    classes: str | os.PathLike[str] | None = None,
    split: str | None = None,
    missing: Missing = "skip",
    check_videos: bool = False,
    view_name: str = "front",
) -> ImportResult:
    """A manifest from MMAction2-style video lists: ``<path> <label>`` per line, paths relative to `video_dir`.

    A label is a class index (MMAction2's lists) or a name. Indices name the line of `classes` (a label map,
    one class per line, as MMAction2's ``label_map_k400.txt``), or without it stay the labels ``"0"``,
    ``"1"``, ... in index order; names keep `classes`' order, else are sorted. The split of each list is
    `split`, else the one its name gives (``ucf101_train_split_1_videos.txt`` -> ``train``).
    """
    check_choice("missing", missing, MISSING_CHOICES)
    root, problems = Path(video_dir).resolve(), Problems()
    names = [line for _, line in read_lines(Path(classes), problems)] if classes is not None else None
    entries: list[tuple[Draft, str]] = []
    for path in as_paths(list_files):
        list_split = split if split is not None else split_from_name(path)
        for number, line in read_lines(path, problems):
            relative, _, label = line.rpartition(" ")
            if not relative.strip() or _several_labels(root, relative):
                problems.add(Origin(path, number), f"need '<path> <label>' (one label per video), got {line!r}")
                continue
            entries.append((Draft("", Origin(path, number), split=list_split, label=label), relative.strip()))
    labels = _list_labels([draft for draft, _ in entries], names, problems)
    ids = unique_ids([relative for _, relative in entries])
    for (draft, relative), video_id in zip(entries, ids, strict=True):
        draft.id, draft.looked_for, listed = video_id, relative, root / relative
        draft.video = listed if listed.is_file() else None
    drafts = [draft for draft, _ in entries if draft.label is not None]
    options = Options("video-list", root, view_name, missing, probe=check_videos, labels=labels)
    return finish_import(drafts, problems, options)


def _several_labels(root: Path, relative: str) -> bool:
    """Whether ``<path> <label> <label>`` (MMAction2's multi-label lists) was read as a path with a space."""
    first, _, rest = relative.partition(" ")
    return rest.replace(" ", "").isdigit() and (root / first).is_file() and not (root / relative).is_file()


def _list_labels(drafts: list[Draft], names: list[str] | None, problems: Problems) -> list[str]:
    """The label list; each draft's label becomes a name (None where it is not one of `names`)."""
    indices = all(draft.label is not None and draft.label.isdigit() for draft in drafts)
    for draft in drafts:
        assert draft.label is not None
        if indices and names is not None and int(draft.label) >= len(names):
            problems.add(draft.origin, f"class index {draft.label} is past the {len(names)} classes of the label map")
            draft.label = None
        elif indices and names is not None:
            draft.label = names[int(draft.label)]
        elif names is not None and draft.label not in names:
            problems.add(draft.origin, f"label {draft.label!r} is not in the label map")
            draft.label = None
    if names is not None:
        return names
    if indices:
        return [str(index) for index in range(max((int(d.label or 0) for d in drafts), default=-1) + 1)]
    return sorted({draft.label for draft in drafts if draft.label is not None})


def unique_ids(relative_paths: Sequence[str]) -> list[str]:
    """Each file's stem, or when stems repeat (``walk/0001.mp4``, ``run/0001.mp4``), every path with
    ``__`` for its folder separators and without its extension (ids become file names)."""
    stems = [Path(relative).stem for relative in relative_paths]
    if len(set(stems)) == len(stems):
        return stems
    return [str(Path(relative).with_suffix("")).replace(os.sep, "__").replace("/", "__") for relative in relative_paths]


def import_video_folders(
    video_dir: str | os.PathLike[str],
    *,
    split: str | None = None,
    check_videos: bool = False,
    view_name: str = "front",
) -> ImportResult:
    """A manifest from a class-folder tree ``<root>/<class>/<video>`` (videos deeper inside a class folder
    count for it), or ``<root>/<split>/<class>/<video>`` when every top folder is a split name (``train``,
    ``val``, ``test``, ...). Labels are the class folders' names, sorted (as torchvision's ``find_classes``).

    Args:
        video_dir: The tree's root, the data root.
        split: The split of every video, for a tree without split folders.
        check_videos: Also read each video's packet index, skipping the unreadable ones.
        view_name: Name of the single view.
    """
    root, problems = Path(video_dir).resolve(), Problems()
    tops = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    by_split = bool(tops) and all(p.name.lower() in SPLIT_NAMES for p in tops)
    folders = [(SPLIT_NAMES[t.name.lower()], t) for t in tops] if by_split else [(split, root)]
    found: list[tuple[Path, str | None, str]] = []
    loose: list[Path] = []
    for folder_split, folder in folders:
        for path in sorted(VideoFiles(folder).paths()):
            parts = path.relative_to(folder).parts
            if len(parts) == 1:
                loose.append(path)
            else:
                found.append((path, folder_split, parts[0]))
    ids = unique_ids([str(path.relative_to(root)) for path, _, _ in found])
    drafts = [Draft(video_id, Origin(path.parent), split=s, label=label, video=path)
              for video_id, (path, s, label) in zip(ids, found, strict=True)]  # fmt: skip
    options = Options("folders", root, view_name, "skip", probe=check_videos)
    result = finish_import(drafts, problems, options)
    notes = tuple(ImportNote(Origin(path), path.stem, "not in a class folder", f"{path}: not inside a class folder")
                  for path in loose)  # fmt: skip
    return ImportResult(result.format, result.manifest, notes + result.skipped, result.clipped)


def import_multiview(
    video_dir: str | os.PathLike[str], *, views: Sequence[str] | None = None, split: str | None = None
) -> ImportResult:
    """A manifest from a folder of recordings ``<id>/<view>.<ext>``, one folder per recording.

    Args:
        video_dir: The folder, the data root.
        views: View names in order (the first is the reference view); by default the first
            recording's, sorted. Every recording must have them all.
        split: Split given to every video.
    """
    root, problems = Path(video_dir).resolve(), Problems()
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if not folders:
        problems.add(Origin(root), "holds no '<id>/<view>.<ext>' recordings")
    found = {folder.name: _view_files(folder) for folder in folders}
    names = tuple(views) if views else tuple(sorted(next(iter(found.values()), {})))
    entries = []
    for video_id, files in found.items():
        if lacking := [name for name in names if name not in files]:
            problems.add(Origin(root / video_id), f"lacks view(s) {lacking} of {list(names)}", video_id=video_id)
            continue
        entries.append(VideoEntry(id=video_id, views={name: files[name] for name in names}, split=split))
    problems.raise_any()
    return ImportResult("multiview", Manifest((), root, tuple(entries)))


def _view_files(folder: Path) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_video(p))
    return {p.stem: p for p in sorted(files, key=lambda p: -VIDEO_SUFFIXES.index(p.suffix.lower()))}
