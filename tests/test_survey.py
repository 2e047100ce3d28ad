"""A whole 3D survey predicted and explained back into SEG-Y: every trace equals the 2D result of
its line, the survey's headers are kept, a killed run resumes, a 2D line is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import segyio

from conftest import ROOT
from explain.sections import explain_section
from models.saving import load_keras_file
from training.predict import main as predict
from training.tasks.segment import predict_section

SAMPLES = 40


def write_cube(path, inlines: range, crosslines: range, samples: int = SAMPLES) -> str:
    """A cube of random reflectivity written by segyio, inline-sorted, IBM floats."""
    spec = segyio.spec()
    spec.ilines, spec.xlines, spec.samples = list(inlines), list(crosslines), list(range(samples))
    spec.format, spec.sorting = 1, int(segyio.TraceSortingFormat.INLINE_SORTING)
    rng = np.random.default_rng(len(inlines))
    with segyio.create(str(path), spec) as cube:
        cube.text[0] = segyio.tools.create_text_header({1: "geoxai test survey", 2: "written by segyio"})
        index = 0
        for inline in spec.ilines:
            for crossline in spec.xlines:
                cube.header[index] = {segyio.TraceField.INLINE_3D: inline, segyio.TraceField.CROSSLINE_3D: crossline,
                                      segyio.TraceField.CDP_X: 1000 * inline, segyio.TraceField.CDP_Y: 7 * crossline}
                cube.trace[index] = rng.normal(size=samples).astype(np.float32)
                index += 1
    return str(path)


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> str:
    return write_cube(tmp_path_factory.mktemp("survey") / "survey.sgy", range(100, 105), range(7, 19))


def test_every_trace_of_the_volume_is_the_2d_prediction_of_its_line(tiny_unet_run, cube, tmp_path):
    """Break tried: a section written back reshaped to (traces, samples) instead of transposed;
    the values then land on the wrong traces and samples."""
    out = tmp_path / "salt.sgy"
    assert predict(["--model", str(tiny_unet_run), "--cube", cube, "--out", str(out)]) == 0
    model = load_keras_file(tiny_unet_run / "model.keras")
    with segyio.open(cube) as source, segyio.open(str(out)) as volume:
        for inline in source.ilines:
            expected = predict_section(model, np.asarray(source.iline[inline]).T, 32, 16, "patch")
            np.testing.assert_allclose(np.asarray(volume.iline[inline]).T, expected, atol=1e-5)
        assert volume.bin[segyio.BinField.Format] == 5  # probabilities as IEEE floats
        assert volume.text[0] == source.text[0]
        assert all(dict(volume.header[i]) == dict(source.header[i]) for i in range(source.tracecount))
    assert not (tmp_path / "salt.sgy.partial").exists() and not (tmp_path / "salt.sgy.partial.json").exists()


def test_crosslines_are_predicted_along_their_own_direction(tiny_unet_run, cube, tmp_path):
    out = tmp_path / "salt_x.sgy"
    assert predict(["--model", str(tiny_unet_run), "--cube", cube, "--along", "crossline", "--out", str(out)]) == 0
    model = load_keras_file(tiny_unet_run / "model.keras")
    with segyio.open(cube) as source, segyio.open(str(out)) as volume:
        crossline = source.xlines[4]
        expected = predict_section(model, np.asarray(source.xline[crossline]).T, 32, 16, "patch")
        np.testing.assert_allclose(np.asarray(volume.xline[crossline]).T, expected, atol=1e-5)


def test_explain_run_writes_an_explanation_volume(tiny_unet_run, cube, tmp_path):
    from explain.run import main as explain

    out = tmp_path / "why.sgy"
    assert explain(["--model", str(tiny_unet_run), "--cube", cube, "--methods", "gradcam", "--layer", "stage2_out",
                    "--out", str(out)]) == 0
    model = load_keras_file(tiny_unet_run / "model.keras")
    with segyio.open(cube) as source, segyio.open(str(out)) as volume:
        inline = source.ilines[2]
        expected = explain_section(model, np.asarray(source.iline[inline]).T, ["gradcam"], 16, "patch",
                                   "stage2_out")["gradcam"]
        np.testing.assert_allclose(np.asarray(volume.iline[inline]).T, expected, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--methods", "gradcam,saliency"], "--cube writes one volume: pass one method"),
])
def test_explain_run_cube_refusals(tiny_unet_run, cube, tmp_path, capsys, argv, message):
    from explain.run import main as explain

    assert explain(["--model", str(tiny_unet_run), "--cube", cube, "--out", str(tmp_path / "w.sgy"), *argv]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "w.sgy").exists()


def test_a_2d_line_given_as_a_cube_is_refused_with_what_to_do(tiny_unet_run, tmp_path, capsys):
    line = tmp_path / "line.sgy"
    segyio.tools.from_array2D(str(line), np.ones((6, SAMPLES), np.float32))
    assert predict(["--model", str(tiny_unet_run), "--cube", str(line), "--out", str(tmp_path / "s.sgy")]) == 2
    err = capsys.readouterr().err
    assert "is not a 3D cube: it holds 1 inline(s) and 6 crossline(s)" in err and "--section" in err
    assert not list(tmp_path.glob("s.sgy*"))


@pytest.mark.slow
def test_a_killed_prediction_resumes_without_redoing_finished_lines(tiny_unet_run, tmp_path):
    """A real process killed (SIGKILL) after it wrote some inlines; the same command again says
    how many it found done, writes the rest, and the volume equals a run never interrupted.
    Break tried: ignoring the record of finished lines; the resumed run then says nothing of them."""
    big = write_cube(tmp_path / "big.sgy", range(1, 31), range(1, 65), samples=64)
    out = tmp_path / "salt.sgy"
    command = ["--model", str(tiny_unet_run), "--cube", big, "--out", str(out), "--stride", "2"]
    process = subprocess.Popen([sys.executable, "-m", "training.predict", *command], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = tmp_path / "salt.sgy.partial.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if record.is_file() and len(json.loads(record.read_text() or '{"done": []}')["done"]) >= 2:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists(), "the prediction finished before it could be killed; make the cube larger"
    finished = json.loads(record.read_text())["done"]
    completed = subprocess.run([sys.executable, "-m", "training.predict", *command], cwd=ROOT, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert f"{len(finished)} line(s) already written" in completed.stdout
    model = load_keras_file(tiny_unet_run / "model.keras")
    with segyio.open(big) as source, segyio.open(str(out)) as volume:
        for inline in (finished[0], source.ilines[-1]):
            expected = predict_section(model, np.asarray(source.iline[inline]).T, 32, 2, "patch")
            np.testing.assert_allclose(np.asarray(volume.iline[inline]).T, expected, atol=1e-5)


@pytest.mark.slow
def test_two_processes_share_the_lines_and_share_0_writes_one_volume(tiny_unet_run, cube, tmp_path):
    """Issue 31, part 5: two real processes, share 1 started first (it waits for share 0 to
    create the volume), each writing its own inlines; share 0 waits for share 1 and writes the
    one file, equal trace by trace to the 2D prediction of each inline, headers the survey's.
    Break tried: every share computing all lines (share 1 then writes 5 inlines, not 2)."""
    out = tmp_path / "salt.sgy"
    command = [sys.executable, "-m", "training.predict", "--model", str(tiny_unet_run), "--cube", cube,
               "--out", str(out)]
    second = subprocess.Popen([*command, "--share", "1/2"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    first = subprocess.run([*command, "--share", "0/2"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    second_output = second.communicate(timeout=600)[0]
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:] + second_output[-2000:]
    assert f"Share 1/2: 2 inline(s) written into {out}.partial" in second_output
    assert f"Salt probability of every inline of {cube}: {out}" in first.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["salt.sgy"]
    model = load_keras_file(tiny_unet_run / "model.keras")
    with segyio.open(cube) as source, segyio.open(str(out)) as volume:
        for inline in source.ilines:
            expected = predict_section(model, np.asarray(source.iline[inline]).T, 32, 16, "patch")
            np.testing.assert_allclose(np.asarray(volume.iline[inline]).T, expected, atol=1e-5)
        assert all(dict(volume.header[i]) == dict(source.header[i]) for i in range(source.tracecount))


def test_a_share_that_is_no_share_is_refused(tiny_unet_run, cube, tmp_path, capsys):
    for bad, words in (("2/2", "'2/2': INDEX runs from 0 to COUNT - 1"), ("one/two", "'one/two': write INDEX/COUNT")):
        with pytest.raises(SystemExit):
            predict(["--model", str(tiny_unet_run), "--cube", cube, "--out", str(tmp_path / "x.sgy"), "--share", bad])
        assert words in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
