import cv2
import numpy as np
import pandas as pd
import pytest

from datasets.images import read_image, write_image
from datasets.tables import DataError, check_images, load_table, stratified_split, write_split


def _image(seed=0, size=40):
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def _class_folders(root, counts, size=40):
    for label, count in counts.items():
        for i in range(count):
            write_image(root / label / f"{label}_{i}.png", _image(i, size))
    return root


def test_split_is_stratified_seeded_and_six_two_two(tmp_path):
    table = load_table(_class_folders(tmp_path, {"a": 30, "b": 20}))
    split = stratified_split(table, seed=1)
    counts = split.groupby(["label", "split"]).size().unstack()
    assert counts.loc["a"].to_dict() == {"test": 6, "train": 18, "val": 6}
    assert counts.loc["b"].to_dict() == {"test": 4, "train": 12, "val": 4}
    pd.testing.assert_frame_equal(split, stratified_split(table, seed=1))
    assert not split["split"].equals(stratified_split(table, seed=2)["split"])


def test_split_csv_round_trips_as_a_manifest(tmp_path):
    table = stratified_split(load_table(_class_folders(tmp_path / "data", {"a": 5, "b": 5})))
    write_split(table, tmp_path / "split.csv")
    again = load_table(tmp_path / "split.csv")
    pd.testing.assert_frame_equal(again[["path", "label", "split"]], table[["path", "label", "split"]])
    assert stratified_split(again)["split"].equals(table["split"])  # the manifest's split wins


def test_manifest_with_one_row_per_box_keeps_the_largest(tmp_path):
    write_image(tmp_path / "x.png", _image())
    write_image(tmp_path / "y.png", _image(1))
    pd.DataFrame({"path": ["x.png", "x.png", "y.png"], "label": ["cw", "cw", "ccw"],
                  "xmin": [0, 5, 1], "ymin": [0, 5, 1], "xmax": [4, 30, 9], "ymax": [4, 30, 9]}
                 ).to_csv(tmp_path / "m.csv", index=False)
    table = load_table(tmp_path / "m.csv")
    assert len(table) == 2
    assert table.loc[table["path"].str.endswith("x.png"), "xmax"].item() == 30


def test_decoding_handles_16_bit_rgba_grey_and_tiff(tmp_path):
    deep = (np.arange(32 * 32 * 3).reshape(32, 32, 3) * 60).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert read_image(tmp_path / "deep.png").dtype == np.uint8
    assert read_image(tmp_path / "deep.png").max() == deep.max() // 257
    rgba = np.dstack([_image(), np.full((40, 40), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba[..., 2::-1])
    cv2.imwrite(str(tmp_path / "grey.tif"), _image()[..., 0])
    grey = read_image(tmp_path / "grey.tif")
    assert grey.shape == (40, 40, 3) and (grey[..., 0] == grey[..., 2]).all()


def make_messy_folder(root):
    """Three unusable files among usable ones of every awkward kind; returns the bad names."""
    _class_folders(root, {"cw": 4, "ccw": 4}, size=48)
    ok, jpeg = cv2.imencode(".jpg", _image(9, 48))
    (root / "cw" / "truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    (root / "cw" / "empty.png").write_bytes(b"")
    (root / "cw" / "notes.png").write_text("this is a text file, not an image")
    cv2.imwrite(str(root / "ccw" / "deep.png"), (_image(3, 48).astype(np.uint16) * 257))
    cv2.imwrite(str(root / "ccw" / "alpha.png"), np.dstack([_image(4, 48), np.full((48, 48), 200, np.uint8)]))
    cv2.imwrite(str(root / "ccw" / "grey.tiff"), _image(5, 48)[..., 0])
    write_image(root / "ccw" / "schiefer_ä_石.png", _image(6, 48))
    return {"truncated.jpg": "corrupt", "empty.png": "empty file", "notes.png": "cannot be decoded"}


def test_unusable_files_are_listed_with_reasons(tmp_path):
    bad = make_messy_folder(tmp_path)
    checked = check_images(load_table(tmp_path), min_size=32)
    reasons = {path.split("/")[-1]: reason for path, reason in checked.bad_files.itertuples(index=False)}
    assert set(reasons) == set(bad)
    for name, words in bad.items():
        assert words in reasons[name]
    assert len(checked.table) == 12  # everything else decoded, the non-ASCII name too
    assert checked.table["path"].str.endswith("schiefer_ä_石.png").any()


@pytest.mark.parametrize("case, message", [
    ("missing", "Data path does not exist"),
    ("no_folders", "No class folders"),
    ("empty_class", "holds no images"),
    ("single_class", "single class"),
    ("too_small", "None of the 6 images can be used.*smaller than this model.s minimum of 32x32"),
    ("too_few", "needs at least 3 per class"),
    ("too_many_classes", "39 images of 13 classes .* cannot be split train/val/test 0.6:0.2:0.2 with every class"),
])
def test_data_errors_say_what_is_wrong(tmp_path, case, message):
    root = tmp_path / "data"
    root.mkdir()
    if case == "empty_class":
        _class_folders(root, {"a": 3})
        (root / "b").mkdir()
    elif case == "single_class":
        _class_folders(root, {"a": 3})
    elif case == "too_small":
        _class_folders(root, {"a": 3, "b": 3}, size=20)
    elif case == "too_few":
        _class_folders(root, {"a": 3, "b": 2})
    elif case == "too_many_classes":  # 3 per class, but the val/test third cannot hold 13 classes twice
        _class_folders(root, {f"class_{i:02d}": 3 for i in range(13)})
    source = tmp_path / "nowhere" if case == "missing" else root
    with pytest.raises(DataError, match=message):
        stratified_split(check_images(load_table(source), min_size=32).table)


def test_rows_of_one_image_that_disagree_on_its_label_are_named_not_resolved(tmp_path):
    """Issue 32, point 15: the detection layout (a row per box) read as a classifier manifest.
    Rows whose labels differ, and a row without a label beside a labelled one, leave the image
    out with the lines named in bad_files; agreeing rows stay one image. Break tried: the old
    rule (the largest box's row wins, whatever the others say)."""
    for name in "abcd":
        write_image(tmp_path / f"{name}.png", _image())
    pd.DataFrame({"path": ["a.png", "a.png", "b.png", "b.png", "c.png", "c.png", "d.png"],
                  "label": ["cw", "ccw", "cw", "", "cw", "cw", "ccw"],
                  "xmin": [0, 5, 0, 0, 0, 1, 0], "ymin": [0, 5, 0, 0, 0, 1, 0],
                  "xmax": [4, 30, 9, 20, 9, 20, 9], "ymax": [4, 30, 9, 20, 9, 20, 9]}).to_csv(tmp_path / "m.csv",
                                                                                           index=False)
    checked = check_images(load_table(tmp_path / "m.csv"), min_size=8)
    assert sorted(p.rsplit("/", 1)[-1] for p in checked.table["path"]) == ["c.png", "d.png"]
    reasons = dict(zip((p.rsplit("/", 1)[-1] for p in checked.bad_files["path"]), checked.bad_files["reason"]))
    assert reasons == {"a.png": "m.csv lines 2, 3 give this image the labels 'cw', 'ccw': a classifier takes one "
                                "label per image; give each of its rows the same label",
                       "b.png": "m.csv lines 4, 5 give this image the labels 'cw', none: a classifier takes one "
                                "label per image; give each of its rows the same label"}
