"""A zoo of bad and unusual input against ``python -m training.run`` and ``python -m explain.run``.

Each case either works, gets one clear line naming the file or value and exit code 2, or is
skipped with its reason in ``bad_files.csv`` while the run goes on; and nothing the user had is
changed. The zoo is built once in a temporary folder; one real training process runs on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, snapshot
from PIL import Image
from test_tables import _image, make_messy_folder

from datasets.console import NOISE
from datasets.images import write_image
from datasets.synthetic import thin_sections
from datasets.tables import check_images, load_table
from datasets.tiles import tile_origins
from explain.run import main as explain_main
from training.run import main as train_main

NOT_UTF8 = b"bad\xffname.png"
SKIPPED = {  # file name -> words its line in bad_files.csv must hold
    "truncated.jpg": "corrupt", "empty.png": "empty file", "notes.png": "cannot be decoded",
    "loop_a.png": "symbolic links", "loop_b.png": "symbolic links",
    "bomb.png": "decompression bomb", "thumb.png": "1x1 px is smaller than", "readme.txt": "unsupported file type",
}


def png_with_size(path: Path, width: int, height: int) -> None:
    """A valid PNG header claiming width x height pixels, with a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 99))
                     + chunk(b"IEND", b""))


def build_zoo(root: Path) -> Path:
    data = root / "data"
    make_messy_folder(data)  # truncated JPEG, empty file, text as .png, 16-bit, RGBA, grey TIFF, non-ASCII name
    os.symlink("loop_b.png", data / "cw" / "loop_a.png")
    os.symlink("loop_a.png", data / "cw" / "loop_b.png")
    png_with_size(data / "cw" / "bomb.png", 100_000, 100_000)
    write_image(os.fsdecode(os.fsencode(data / "ccw") + b"/" + NOT_UTF8), _image(7, 48))
    Image.fromarray(_image(8, 48)).save(data / "cw" / "moving.gif")
    Image.fromarray(_image(10, 48)).convert("CMYK").save(data / "cw" / "cmyk.jpg")
    write_image(data / "cw" / "thumb.png", _image(11, 1))
    (data / "cw" / "readme.txt").write_text("Samples from core 12.")
    manifests = root / "manifests"
    manifests.mkdir()
    (manifests / "empty.csv").write_text("")
    (manifests / "binary.csv").write_bytes(bytes(range(256)) * 4)
    good = [f"../data/{label}/{label}_{i}.png" for label in ("cw", "ccw") for i in range(3)]
    rows = ["path,label,xmin,ymin,xmax,ymax", f"{good[0]},cw,30,4,10,40", f"{good[1]},cw,10,10,400,400",
            f"{good[2]},,10,10,30,30", *(f"{p},{p.split('/')[2]},8,8,40,40" for p in good[3:])]
    (manifests / "boxes.csv").write_text("\n".join(rows) + "\n")
    (root / "bad.yaml").write_text("epochs: ten\nlr: -1\nbatch_size: 0\nmodel: nosuch\n")
    big = root / "big"
    write_image(big / "thin_section.png", thin_sections.generate(np.random.default_rng(0), 200).image[:160])
    (root / "big.csv").write_text("path,label\nbig/thin_section.png,cw\ndata/cw/cw_0.png,cw\n")
    return root


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = build_zoo(tmp_path_factory.mktemp("zoo"))
    return root, snapshot(root)


@pytest.fixture(scope="module")
def trained(zoo, tmp_path_factory):
    """A real training process on the zoo's class folders: SedNet, 32 px, one epoch."""
    logdir = tmp_path_factory.mktemp("zoo_logs")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "training.run", "--data", str(zoo[0] / "data"), "--epochs", "1",
                             "--image-size", "32", "--local-size", "16", "--batch-size", "8", "--tb-gradcam-freq",
                             "0", "--tb-histogram-freq", "0", "--logdir", str(logdir), "--run-name", "zoo"],
                            cwd=ROOT, capture_output=True, text=True, errors="backslashreplace", timeout=600,
                            env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir / "zoo", result


def read_bad_files(path: Path) -> dict[str, str]:
    table = pd.read_csv(path, encoding_errors="surrogateescape")
    return {Path(p).name: reason for p, reason in zip(table["path"], table["reason"])}


@pytest.mark.slow
def test_training_goes_on_and_lists_each_unusable_file_with_its_reason(trained):
    listed = read_bad_files(trained[0] / "bad_files.csv")
    assert sorted(listed) == sorted(SKIPPED)
    for name, words in SKIPPED.items():
        assert words in listed[name], (name, listed[name])
    assert "Skipped 8 file(s) that cannot be used (1 of a file type OpenCV does not read)" in trained[1].stdout
    assert (trained[0] / "export" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_gif_cmyk_and_a_name_that_is_not_utf8_are_trained_on(trained):
    split = pd.read_csv(trained[0] / "split.csv", encoding_errors="surrogateescape")
    names = {os.fsencode(Path(p).name) for p in split["path"]}
    assert {b"moving.gif", b"cmyk.jpg", NOT_UTF8} <= names
    assert all(os.path.exists(p) for p in split["path"])  # the CSV gives back the very file names


@pytest.mark.slow
def test_a_newcomer_sees_our_lines_first_and_no_start_up_noise(trained):
    """TF_CPP_MIN_LOG_LEVEL is unset for this process: the entry point alone quiets the start."""
    noise = [line for line in trained[1].stderr.splitlines() if NOISE.search(line)]
    assert not noise and "Traceback" not in trained[1].stderr
    assert trained[1].stdout.startswith("Run folder:")


@pytest.mark.slow
def test_explain_run_lists_the_same_files_and_explains_the_rest(trained, zoo, tmp_path):
    assert explain_main(["--model", str(trained[0]), "--images", str(zoo[0] / "data"), "--out", str(tmp_path)]) == 0
    assert sorted(read_bad_files(tmp_path / "bad_files.csv")) == sorted(SKIPPED)
    explained = pd.read_csv(tmp_path / "explanations.csv", encoding_errors="surrogateescape")
    assert os.fsdecode(NOT_UTF8) in {Path(p).name for p in explained["file"]}
    assert (tmp_path / "gallery.html").is_file()


def test_impossible_boxes_and_unlabelled_rows_are_listed_with_their_line(zoo):
    checked = check_images(load_table(zoo[0] / "manifests" / "boxes.csv"), min_size=32)
    reasons = dict(zip(checked.bad_files["path"].map(lambda p: Path(p).name), checked.bad_files["reason"]))
    assert sorted(reasons) == ["cw_0.png", "cw_1.png", "cw_2.png"]
    assert reasons["cw_0.png"].startswith("boxes.csv line 2: box (30, 4, 10, 40) is incomplete, empty, inverted")
    assert reasons["cw_1.png"].startswith("boxes.csv line 3: box") and "beyond the 48x48 image" in reasons["cw_1.png"]
    assert reasons["cw_2.png"] == "boxes.csv line 4: no label"
    assert len(checked.table) == 3


@pytest.mark.parametrize("argv, words", [
    (["--data", "{zoo}/manifests/empty.csv"], "manifests/empty.csv is empty"),
    (["--data", "{zoo}/manifests/binary.csv"], "manifests/binary.csv is not a readable CSV file"),
    (["--config", "{zoo}/bad.yaml"], "bad.yaml: epochs='ten' should be of type int; model='nosuch' is not one of"),
    (["--config", "{zoo}/bad.yaml"], "batch_size=0 must be >= 1; lr=-1.0 must be > 0"),
    (["--data", "{zoo}/data", "--strategy", "multiworker"], "TF_CONFIG is not JSON"),
])
def test_training_input_errors_are_one_line(zoo, tmp_path, capsys, monkeypatch, argv, words):
    if "multiworker" in argv:
        monkeypatch.setenv("TF_CONFIG", "{cluster: [")
    code = train_main([a.format(zoo=zoo[0]) for a in argv] + ["--logdir", str(tmp_path), "--image-size", "32"])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # no half-made run folder is left


@pytest.fixture(scope="module")
def damaged_models(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = (trained[0] / "model.keras").read_bytes()
    (folder / "not_a_model.keras").write_text("hello")
    (folder / "truncated.keras").write_bytes(model[: len(model) // 2])
    with zipfile.ZipFile(trained[0] / "model.keras") as source, \
            zipfile.ZipFile(folder / "foreign.keras", "w") as foreign:
        for name in source.namelist():
            content = source.read(name)
            if name == "metadata.json":
                content = json.dumps({**json.loads(content), "keras_version": "2.99.0"}).encode()
            if name == "config.json":
                content = content.replace(b'"Conv2D"', b'"Conv9D"')
            foreign.writestr(name, content)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name, words", [
    ("not_a_model.keras", "is not a Keras model file"),
    ("truncated.keras", "is not a Keras model file"),
    ("foreign.keras", "was written by Keras 2.99.0 and cannot be read by Keras 3."),
])
def test_a_model_file_keras_cannot_load_is_named_with_the_reason(damaged_models, zoo, tmp_path, capsys, name, words):
    code = explain_main(["--model", str(damaged_models / name), "--images", str(zoo[0] / "data"), "--out",
                         str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and str(damaged_models / name) in err and words in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("images", ["big", "big.csv"])
def test_tiled_explanation_of_a_large_thin_section(trained, zoo, tmp_path, images):
    assert explain_main(["--model", str(trained[0]), "--images", str(zoo[0] / images), "--tile", "48", "--stride",
                         "24", "--methods", "gradcam,saliency", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "explanations.csv")
    first = table.iloc[0]
    assert Path(first["file"]).name == "thin_section.png" and first["tiles"] == len(tile_origins((160, 200), 48, 24))
    assert sum(int(v.split(":")[1]) for v in first["votes"].split()) == first["tiles"]
    stem = "00000_thin_section"
    for picture in (f"classes/{stem}.png", f"classes/{stem}_cw.png", f"gradcam/{stem}.png", f"saliency/{stem}.png"):
        assert np.asarray(Image.open(tmp_path / picture)).shape[:2] == (160, 200), picture
    probabilities = np.load(tmp_path / "classes" / f"{stem}_probabilities.npy").astype(np.float32)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=2e-3)
    assert first["predicted"] in ("cw", "ccw") and (tmp_path / "gallery.html").is_file()
    if images.endswith(".csv"):
        assert list(table["label"]) == ["cw", "cw"] and table["correct"].notna().all()


@pytest.mark.slow
def test_nothing_the_user_had_was_changed(zoo, trained, damaged_models):
    assert snapshot(zoo[0]) == zoo[1]
