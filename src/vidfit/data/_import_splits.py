"""UCF101 and HMDB51: class folders of clips, and official split files choosing each clip's split per fold.

Class order and split meaning follow the datasets' own files as MMAction2 and torchvision read them:
UCF101's classes in ``classInd.txt`` order (class id = index - 1), HMDB51's sorted by name; UCF101's
``trainlist0N.txt``/``testlist0N.txt``, HMDB51's ``<class>_test_splitN.txt`` (1 train, 2 test, 0 left out).
"""

from __future__ import annotations

import os
from pathlib import Path

from vidfit.data._import_build import MISSING_CHOICES, Draft, Missing, Options, finish_import
from vidfit.data._import_result import ImportResult
from vidfit.data._import_text import Origin, Problems, check_choice, read_lines
from vidfit.data._import_videos import VideoFiles

FOLDS: tuple[int, ...] = (1, 2, 3)
_HMDB_CODES = {"1": "train", "2": "test", "0": None}


def import_ucf101(
    video_dir: str | os.PathLike[str],
    *,
    split_dir: str | os.PathLike[str],
    fold: int = 1,
    missing: Missing = "skip",
    check_videos: bool = False,
    view_name: str = "front",
) -> ImportResult:
    """A manifest from UCF101's ``UCF-101/<Class>/<clip>.avi`` and its ``ucfTrainTestlist`` folder.

    Args:
        video_dir: The ``UCF-101`` folder, the data root.
        split_dir: The folder of ``classInd.txt``, ``trainlist0N.txt`` and ``testlist0N.txt``.
        fold: Which official split (1, 2 or 3): its train list gives split ``train``, its test list ``test``.
        missing: ``"skip"`` clips not found (listed in the report) or report them as an ``"error"``.
        check_videos: Also read each clip's packet index, skipping (or reporting) the unreadable ones.
        view_name: Name of the single view.
    """
    check_choice("fold", fold, FOLDS)
    check_choice("missing", missing, MISSING_CHOICES)
    root, folder, problems = Path(video_dir).resolve(), Path(split_dir), Problems()
    classes = _class_index(folder / "classInd.txt", problems)
    files, drafts = VideoFiles(root), []
    for split in ("train", "test"):
        path = folder / f"{split}list{fold:02d}.txt"
        for number, line in read_lines(path, problems):
            draft = _ucf_draft(line, Origin(path, number), split, classes, problems)
            if draft is not None:
                _locate(draft, root, files)
                drafts.append(draft)
    options = Options("ucf101", root, view_name, missing, probe=check_videos, labels=classes)
    return finish_import(drafts, problems, options)


def _class_index(path: Path, problems: Problems) -> list[str]:
    """``classInd.txt``'s names in index order; the indices must run 1, 2, ... without a gap."""
    classes: list[str] = []
    for number, line in read_lines(path, problems):
        index, _, name = line.partition(" ")
        if not index.isdigit() or not name.strip() or "/" in name:
            problems.add(Origin(path, number), f"need '<index> <Class>', got {line!r}")
        elif int(index) != len(classes) + 1:
            problems.add(Origin(path, number), f"index {index} should be {len(classes) + 1}: indices run 1, 2, ...")
        else:
            classes.append(name.strip())
    return classes


def _ucf_draft(line: str, origin: Origin, split: str, classes: list[str], problems: Problems) -> Draft | None:
    fields = line.split()
    parts = fields[0].replace("\\", "/").split("/")
    if len(fields) > 2 or len(parts) != 2 or not all(parts) or ".." in parts:
        problems.add(origin, f"need '<Class>/<clip>.avi' (and the train lists' class index), got {line!r}")
        return None
    label, name = parts
    if label not in classes:
        problems.add(origin, f"class {label!r} is not in classInd.txt", video_id=Path(name).stem)
        return None
    if len(fields) == 2 and fields[1] != str(classes.index(label) + 1):
        message = f"class index {fields[1]} disagrees with classInd.txt, where {label!r} is {classes.index(label) + 1}"
        problems.add(origin, message, video_id=Path(name).stem)
        return None
    return Draft(Path(name).stem, origin, split=split, label=label, looked_for=f"{label}/{name}")


def _locate(draft: Draft, root: Path, files: VideoFiles) -> None:
    """The clip at its listed place (`looked_for`), else its name with another extension or letter case in
    its class folder (converted copies, the lists' ``HandstandPushups`` spelling)."""
    listed = root / draft.looked_for
    draft.video = listed if listed.is_file() else files.find(draft.id, within=listed.parent)


def import_hmdb51(
    video_dir: str | os.PathLike[str],
    *,
    split_dir: str | os.PathLike[str],
    fold: int = 1,
    missing: Missing = "skip",
    check_videos: bool = False,
    view_name: str = "front",
) -> ImportResult:
    """A manifest from HMDB51's ``<class>/<clip>.avi`` folders and its ``testTrainMulti_7030_splits`` files.

    Each ``<class>_test_split<fold>.txt`` lists ``<clip>.avi <code>``: 1 train, 2 test, 0 left out of this
    fold. The label is the class the file is named for; labels are sorted by name. A line naming a clip
    inside another class's folder is an error, never a silent relabel.

    Args:
        video_dir: The folder of class folders, the data root.
        split_dir: The folder of the split files.
        fold: Which official split: 1, 2 or 3.
        missing: ``"skip"`` clips not found (listed in the report) or report them as an ``"error"``.
        check_videos: Also read each clip's packet index, skipping (or reporting) the unreadable ones.
        view_name: Name of the single view.
    """
    check_choice("fold", fold, FOLDS)
    check_choice("missing", missing, MISSING_CHOICES)
    root, folder, problems = Path(video_dir).resolve(), Path(split_dir), Problems()
    suffix = f"_test_split{fold}.txt"
    split_files = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
    if not split_files:
        problems.add(Origin(folder), f"holds no '<class>{suffix}' split files")
    classes = sorted(path.name.removesuffix(suffix) for path in split_files)
    files, drafts = VideoFiles(root), []
    for path in split_files:
        label = path.name.removesuffix(suffix)
        for number, line in read_lines(path, problems):
            draft = _hmdb_draft(line, Origin(path, number), label, classes, problems)
            if draft is not None and draft.split is not None:
                _locate(draft, root, files)
                drafts.append(draft)
    options = Options("hmdb51", root, view_name, missing, probe=check_videos, labels=classes)
    return finish_import(drafts, problems, options)


def _hmdb_draft(line: str, origin: Origin, label: str, classes: list[str], problems: Problems) -> Draft | None:
    fields = line.split()
    if len(fields) != 2 or fields[1] not in _HMDB_CODES:
        problems.add(origin, f"need '<clip>.avi <0|1|2>' (0 left out, 1 train, 2 test), got {line!r}")
        return None
    parts = fields[0].replace("\\", "/").split("/")
    name = parts[-1]
    if len(parts) > 1 and parts[0] in classes and parts[0] != label:
        message = f"{fields[0]!r} is in class {parts[0]!r}'s folder, but this is the split file of {label!r}"
        problems.add(origin, message, video_id=Path(name).stem)
        return None
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != label) or not name or name in (".", ".."):
        problems.add(origin, f"need a clip name of the class folder {label!r}, got {fields[0]!r}")
        return None
    return Draft(Path(name).stem, origin, split=_HMDB_CODES[fields[1]], label=label, looked_for=f"{label}/{name}")
