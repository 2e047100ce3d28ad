"""Detection labels: the YOLO parser, box manifests and the chirality-aware box flip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.detection import ChiralBoxFlip, parse_yolo_labels, read_box_manifest, read_yolo_dataset
from datasets.images import write_image
from datasets.tables import DataError

CLASSES = ["ccw", "cw"]


def _yolo_set(root, labels: dict[str, str | None]):
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for stem, text in labels.items():
        write_image(root / "images" / f"{stem}.png", np.zeros((50, 100, 3), np.uint8))
        if text is not None:
            (root / "labels").mkdir(exist_ok=True)
            (root / "labels" / f"{stem}.txt").write_text(text)
    return root


def test_yolo_labels_become_pixel_boxes_and_images_without_objects_are_kept(tmp_path):
    root = _yolo_set(tmp_path, {"a": "1 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.2 0.2\n", "empty": "", "unlabelled": None})
    table, classes = read_yolo_dataset(root)
    assert classes == CLASSES
    a = table[table["path"].str.endswith("a.png")]
    np.testing.assert_allclose(a[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), [[40, 15, 60, 35], [0, 5, 20, 15]])
    assert list(a["box_label"]) == ["cw", "ccw"]
    others = table[~table["path"].str.endswith("a.png")]
    assert len(others) == 2 and others["box_label"].isna().all()  # listed, with no box


@pytest.mark.parametrize("line", ["2 0.5 0.5 0.1 0.1", "1 0.5 0.5 0.1", "1 0.5 1.5 0.1 0.1", "cw 0.5 0.5 0.1 0.1",
                                  "1 0.5 0.5 0 0.1"])
def test_a_bad_yolo_line_names_the_file_and_line(tmp_path, line):
    path = tmp_path / "img.txt"
    path.write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(DataError, match=rf"img\.txt, line 2: .*{line.split()[0]}"):
        parse_yolo_labels(path, CLASSES, 100, 50)


def test_a_yolo_set_without_class_names_says_what_to_write(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="classes.txt"):
        read_yolo_dataset(tmp_path)


def test_a_box_manifest_is_checked(tmp_path):
    pd.DataFrame({"path": ["x.png", "y.png"], "box_label": ["cw", None], "xmin": [1, None], "ymin": [1, None],
                  "xmax": [5, None], "ymax": [5, None]}).to_csv(tmp_path / "boxes.csv", index=False)
    table, classes = read_box_manifest(tmp_path / "boxes.csv")
    assert classes == ["cw"] and len(table) == 2
    pd.DataFrame({"path": ["x.png"], "box_label": ["cw"], "xmin": [5], "ymin": [1], "xmax": [1],
                  "ymax": [5]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="row 2"):
        read_box_manifest(tmp_path / "bad.csv")


def test_flips_move_the_boxes_and_each_mirror_swaps_the_shear_sense():
    images = np.zeros((16, 16, 20, 3), np.float32)
    images[:, 2:5, 1:6] = 255.0
    boxes = np.tile(np.array([[[1.0, 2.0, 6.0, 5.0], [0.0, 0.0, 0.0, 0.0]]], np.float32), (16, 1, 1))
    classes = np.tile(np.array([[0, -1]], np.int32), (16, 1))
    out_images, out_boxes, out_classes = (np.asarray(t) for t in
                                          ChiralBoxFlip(np.array([1, 0]), seed=3)(images, boxes, classes))
    flips = [next((h, v) for h in (False, True) for v in (False, True)
                  if np.array_equal(out, image[::-1 if v else 1, ::-1 if h else 1]))
             for out, image in zip(out_images, images)]
    assert {(True, False), (False, True), (False, False), (True, True)} <= set(flips)  # the half turn too
    for (h, v), box, label in zip(flips, out_boxes, out_classes):
        expected_x = [14.0, 19.0] if h else [1.0, 6.0]
        expected_y = [11.0, 14.0] if v else [2.0, 5.0]
        np.testing.assert_allclose(box[0], [expected_x[0], expected_y[0], expected_x[1], expected_y[1]])
        assert label[0] == int(h != v)  # one mirror swaps cw and ccw, two (a half turn) do not
        assert label[1] == -1  # padding stays padding
