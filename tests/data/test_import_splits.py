"""UCF101 and HMDB51 in their real layouts: class order, folds, missing clips, odd names, other classes' paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.dataset_layouts import video, write
from vidfit.data import ManifestError, VideoDataset, VideoDatasetConfig, import_hmdb51, import_ucf101, load_manifest

# classInd.txt orders classes case-insensitively (Hammering before HammerThrow), which sorted() would not.
UCF_CLASSES = "1 ApplyEyeMakeup\n2 Hammering\n3 HammerThrow\n4 HandstandPushups\n"
UCF_TRAIN = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
    "Hammering/v_Hammering_g08_c01.avi 2\n"
    "HammerThrow/v_HammerThrow_g08_c01.avi 3\n"
    "HandstandPushups/v_HandStandPushups_g08_c01.avi 4\n"
    "HandstandPushups/v_HandstandPushups_g09_c01.avi 4\n"
)
UCF_TEST = "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nHammerThrow/v_HammerThrow_g01_c01.avi\n"


def ucf101(root: Path) -> tuple[Path, Path]:
    """``UCF-101/<Class>/<clip>.avi`` and ``ucfTrainTestlist`` with CRLF files, as the archives have them."""
    videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
    write(lists / "classInd.txt", UCF_CLASSES, crlf=True)
    write(lists / "trainlist01.txt", UCF_TRAIN, crlf=True)
    write(lists / "testlist01.txt", UCF_TEST, crlf=True)
    write(lists / "trainlist02.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n", crlf=True)
    write(lists / "testlist02.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n", crlf=True)
    for clip in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "Hammering/v_Hammering_g08_c01",
                 "HandstandPushups/v_HandStandPushups_g08_c01", "HandstandPushups/v_HandStandPushups_g09_c01",
                 "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"):  # fmt: skip
        video(videos / f"{clip}.avi")
    return videos, lists  # v_HammerThrow_g08_c01 and v_HammerThrow_g01_c01 are missing


def test_ucf101_classes_folds_and_missing_clips(tmp_path: Path) -> None:
    videos, lists = ucf101(tmp_path)
    result = import_ucf101(videos, split_dir=lists, fold=1)
    manifest = result.manifest
    assert manifest.labels == ("ApplyEyeMakeup", "Hammering", "HammerThrow", "HandstandPushups")
    assert [(v.id, v.split, v.label, str(v.views["front"].relative_to(videos))) for v in manifest.videos] == [
        ("v_ApplyEyeMakeup_g08_c01", "train", "ApplyEyeMakeup", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"),
        ("v_Hammering_g08_c01", "train", "Hammering", "Hammering/v_Hammering_g08_c01.avi"),
        ("v_HandStandPushups_g08_c01", "train", "HandstandPushups", "HandstandPushups/v_HandStandPushups_g08_c01.avi"),
        # the list's spelling differs in letter case from the file's: found in its class folder
        ("v_HandstandPushups_g09_c01", "train", "HandstandPushups", "HandstandPushups/v_HandStandPushups_g09_c01.avi"),
        ("v_ApplyEyeMakeup_g01_c01", "test", "ApplyEyeMakeup", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"),
    ]
    assert [(n.origin.file.name, n.origin.line, n.video_id) for n in result.skipped] == [
        ("trainlist01.txt", 3, "v_HammerThrow_g08_c01"),
        ("testlist01.txt", 2, "v_HammerThrow_g01_c01"),
    ]
    out = result.save(tmp_path / "ucf101.yaml")
    assert load_manifest(out).videos == manifest.videos
    fold2 = import_ucf101(videos, split_dir=lists, fold=2).manifest
    assert [(v.id, v.split) for v in fold2.videos] == [
        ("v_ApplyEyeMakeup_g01_c01", "train"),
        ("v_ApplyEyeMakeup_g08_c01", "test"),
    ]
    with pytest.raises(ValueError, match="fold=4 is not one of 1, 2, 3"):
        import_ucf101(videos, split_dir=lists, fold=4)


def test_ucf101_every_bad_line_is_reported_at_once(tmp_path: Path) -> None:
    videos, lists = ucf101(tmp_path)
    write(lists / "classInd.txt", "1 ApplyEyeMakeup\n3 Hammering\n", crlf=True)
    write(lists / "trainlist01.txt", "ApplyEyeMakeup/v_a.avi 2\nJuggling/v_b.avi 5\n../x/v_c.avi 1\nv_d.avi\n")
    with pytest.raises(ManifestError) as caught:
        import_ucf101(videos, split_dir=lists)
    found = [(p.file.name, p.field, p.message) for p in caught.value.problems]
    assert found == [
        ("classInd.txt", "line 2", "index 3 should be 2: indices run 1, 2, ..."),
        ("trainlist01.txt", "line 1", "class index 2 disagrees with classInd.txt, where 'ApplyEyeMakeup' is 1"),
        ("trainlist01.txt", "line 2", "class 'Juggling' is not in classInd.txt"),
        (
            "trainlist01.txt",
            "line 3",
            "need '<Class>/<clip>.avi' (and the train lists' class index), got '../x/v_c.avi 1'",
        ),
        ("trainlist01.txt", "line 4", "need '<Class>/<clip>.avi' (and the train lists' class index), got 'v_d.avi'"),
        ("testlist01.txt", "line 2", "class 'HammerThrow' is not in classInd.txt"),
    ]


def hmdb51(root: Path) -> tuple[Path, Path]:
    """``hmdb51_org/<class>/<clip>.avi`` and ``testTrainMulti_7030_splits`` (lines end in a space, as there)."""
    videos, splits = root / "hmdb51_org", root / "testTrainMulti_7030_splits"
    write(splits / "brush_hair_test_split1.txt",
          "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
          "Atempting_to_comb_my_hair!_brush_hair_u_cm_np2_le_goo_0.avi 2 \n"
          "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 0 \n")  # fmt: skip
    write(
        splits / "sword_test_split1.txt", "#20_Rhythm_(Sword)_sword_f_cm_np1_fr_med_0.avi 2 \nmissing_sword_0.avi 1 \n"
    )
    write(
        splits / "sword_exercise_test_split1.txt", "Blade_Of_Fury_-_Scene_1_sword_exercise_f_cm_np1_ri_med_3.avi 1 \n"
    )
    write(splits / "brush_hair_test_split2.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n")
    for clip in ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0",
                 "brush_hair/Atempting_to_comb_my_hair!_brush_hair_u_cm_np2_le_goo_0",
                 "brush_hair/Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0",
                 "sword/#20_Rhythm_(Sword)_sword_f_cm_np1_fr_med_0",
                 "sword_exercise/Blade_Of_Fury_-_Scene_1_sword_exercise_f_cm_np1_ri_med_3"):  # fmt: skip
        video(videos / f"{clip}.avi")
    return videos, splits


def test_hmdb51_fold_codes_and_odd_names(tmp_path: Path) -> None:
    videos, splits = hmdb51(tmp_path)
    result = import_hmdb51(videos, split_dir=splits, fold=1, check_videos=True)
    manifest = result.manifest
    assert manifest.labels == ("brush_hair", "sword", "sword_exercise")
    assert [(v.id, v.split, v.label) for v in manifest.videos] == [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0", "train", "brush_hair"),
        ("Atempting_to_comb_my_hair!_brush_hair_u_cm_np2_le_goo_0", "test", "brush_hair"),
        ("Blade_Of_Fury_-_Scene_1_sword_exercise_f_cm_np1_ri_med_3", "train", "sword_exercise"),
        ("#20_Rhythm_(Sword)_sword_f_cm_np1_fr_med_0", "test", "sword"),
    ]  # split files in name order; code 0 (Blonde_being_brushed...) is left out of fold 1
    assert [(n.origin.line, n.video_id, n.kind) for n in result.skipped] == [(2, "missing_sword_0", "missing files")]
    assert "hmdb51: 4 videos, 3 labels, 1 skipped (missing files), see" in result.summary(tmp_path / "h.yaml")
    index = VideoDataset(VideoDatasetConfig(result.save(tmp_path / "h.yaml"), num_frames=2)).index
    assert len(index) == 4  # the loader takes the manifest as written
    fold2 = import_hmdb51(videos, split_dir=splits, fold=2).manifest
    assert [(v.id, v.split) for v in fold2.videos] == [("April_09_brush_hair_u_nm_np1_ba_goo_0", "test")]


def test_hmdb51_a_path_into_another_class_is_an_error_not_a_relabel(tmp_path: Path) -> None:
    videos, splits = hmdb51(tmp_path)
    write(splits / "sword_test_split1.txt", "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nx.avi 3 \n")
    with pytest.raises(ManifestError) as caught:
        import_hmdb51(videos, split_dir=splits, missing="error")
    found = [(p.file.name, p.field, p.message) for p in caught.value.problems]
    assert (
        "sword_test_split1.txt",
        "line 1",
        "'brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi' is in class 'brush_hair''s folder, but this is "
        "the split file of 'sword'",
    ) in found
    assert (
        "sword_test_split1.txt",
        "line 2",
        "need '<clip>.avi <0|1|2>' (0 left out, 1 train, 2 test), got 'x.avi 3'",
    ) in found
    with pytest.raises(ManifestError, match=r"holds no '<class>_test_split3\.txt' split files"):
        import_hmdb51(videos, split_dir=splits, fold=3)
