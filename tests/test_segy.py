"""SEG-Y as surveys export it, every file written by segyio itself (not by geoxai): 2D lines, one
inline or crossline of a 3D survey, cubes, unsorted or incomplete geometry, IBM and IEEE floats,
dead traces, non-standard header bytes, traces of differing lengths; and the other layouts
salt data come in (the TGS folder, 16-bit masks, sections of any size, 8-bit pictures)."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import segyio

from datasets.images import UnreadableImageError
from datasets.seismic import (SegyHeaders, read_binary_mask, read_section, read_section_manifest, read_segy,
                              section_image, section_patches)
from datasets.tiles import blend_tiles

SAMPLES = 24


OFFSET = 1_000_000  # so that no live trace is all zeros


def trace_value(inline: int, crossline: int) -> np.ndarray:
    """A trace that says where it belongs: every sample is 10^6 + inline * 1000 + crossline
    (an integer below 2^24, exact in IBM floats too)."""
    return np.full(SAMPLES, OFFSET + inline * 1000 + crossline, np.float32)


def write_survey(path, positions: list[tuple[int, int]], ibm: bool = False, header_bytes=(189, 193),
                 dead: tuple[int, ...] = ()) -> str:
    """A SEG-Y file with one trace per (inline, crossline) in ``positions``, in that order,
    written by segyio with the numbers at ``header_bytes``."""
    spec = segyio.spec()
    spec.tracecount, spec.samples = len(positions), list(range(SAMPLES))
    spec.format = 1 if ibm else 5
    with segyio.create(str(path), spec) as segy:
        for index, (inline, crossline) in enumerate(positions):
            segy.header[index] = {header_bytes[0]: inline, header_bytes[1]: crossline,
                                  segyio.TraceField.TRACE_SAMPLE_COUNT: SAMPLES}
            segy.trace[index] = np.zeros(SAMPLES, np.float32) if index in dead else trace_value(inline, crossline)
    return str(path)


def grid(inlines, crosslines) -> list[tuple[int, int]]:
    return [(i, x) for i in inlines for x in crosslines]


def numbers(section: np.ndarray) -> list[tuple[int, int]]:
    """The (inline, crossline) each column came from."""
    return [divmod(int(round(v)) - OFFSET, 1000) for v in section[0]]


def test_a_2d_line_is_read_whole(tmp_path):
    """A 2D line keeps no inline or crossline numbers (zeros at bytes 189 and 193); segyio's own
    2D writer numbers its traces as one inline. Both are every trace, in file order."""
    zeros, layout = read_segy(write_survey(tmp_path / "line.sgy", [(0, 0)] * 7))
    assert zeros.shape == (SAMPLES, 7) and layout == "a 2D line: all 7 traces"
    path = tmp_path / "from_array.sgy"
    segyio.tools.from_array2D(str(path), np.arange(7 * SAMPLES, dtype=np.float32).reshape(7, SAMPLES))
    section, layout = read_segy(path)
    assert section.shape == (SAMPLES, 7) and layout == "one inline: all 7 traces"
    np.testing.assert_array_equal(section[:, 2], np.arange(2 * SAMPLES, 3 * SAMPLES))


def test_one_crossline_of_a_3d_survey_is_read_as_all_its_traces(tmp_path, capsys):
    """The survey line of the issue: many inlines of one trace each. Break tried: the old reader,
    which took the middle inline of a 'cube' and returned one trace."""
    path = write_survey(tmp_path / "xline.sgy", grid(range(1000, 1061), [5]), ibm=True)
    section = read_section(path)
    assert section.shape == (SAMPLES, 61)
    assert numbers(section) == grid(range(1000, 1061), [5])
    assert "xline.sgy: 24 samples x 61 traces (one crossline: all 61 traces)" in capsys.readouterr().out


def test_one_inline_of_a_3d_survey_is_read_as_all_its_traces(tmp_path):
    section, layout = read_segy(write_survey(tmp_path / "iline.sgy", grid([7], range(100, 120))))
    assert section.shape == (SAMPLES, 20) and layout == "one inline: all 20 traces"


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> str:
    return write_survey(tmp_path_factory.mktemp("cube") / "cube.sgy", grid(range(10, 14), range(20, 25)))


def test_a_cube_reads_the_inline_or_crossline_asked_for(cube):
    inline, layout = read_segy(cube, inline=12)
    assert numbers(inline) == grid([12], range(20, 25)) and layout == "inline 12"
    crossline, _ = read_segy(cube, crossline=23)
    assert numbers(crossline) == grid(range(10, 14), [23])
    middle, layout = read_segy(cube)
    assert numbers(middle) == grid([12], range(20, 25)) and "the middle one of the cube's inlines 10..13" in layout


@pytest.mark.parametrize("choice, message", [
    ({"inline": 9}, "has no inline 9; its inlines run 10..13 (4 of them)"),
    ({"crossline": 30}, "has no crossline 30; its crosslines run 20..24 (5 of them)"),
    ({"inline": 10, "crossline": 20}, "asked for an inline and a crossline at once"),
])
def test_a_number_the_cube_lacks_is_named_with_the_range(cube, choice, message):
    with pytest.raises(UnreadableImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_segy(cube, **choice)


def test_unsorted_traces_are_read_in_file_order_and_said_so(tmp_path):
    positions = grid(range(10, 13), range(20, 24))
    shuffled = [positions[i] for i in np.random.default_rng(0).permutation(len(positions))]
    path = write_survey(tmp_path / "shuffled.sgy", shuffled)
    section, layout = read_segy(path)
    assert numbers(section) == shuffled and layout.startswith("geometry not inferred")
    chosen, layout = read_segy(path, inline=11)
    assert numbers(chosen) == grid([11], range(20, 24)) and "geometry not inferred" in layout


def test_a_cube_with_a_missing_trace_is_read_in_file_order_and_said_so(tmp_path):
    positions = [p for p in grid(range(1, 4), range(1, 5)) if p != (2, 3)]
    section, layout = read_segy(write_survey(tmp_path / "missing.sgy", positions))
    assert numbers(section) == positions and "all 11 traces in file order" in layout


def test_ibm_and_ieee_floats_read_the_same_values(tmp_path):
    positions = grid([3], range(1, 9))
    ibm, _ = read_segy(write_survey(tmp_path / "ibm.sgy", positions, ibm=True))
    ieee, _ = read_segy(write_survey(tmp_path / "ieee.sgy", positions))
    with segyio.open(str(tmp_path / "ibm.sgy"), ignore_geometry=True) as segy:
        assert segy.bin[segyio.BinField.Format] == 1  # the file really holds IBM floats
    np.testing.assert_array_equal(ibm, ieee)


def test_dead_traces_are_kept_and_counted(tmp_path):
    section, layout = read_segy(write_survey(tmp_path / "dead.sgy", grid([1], range(1, 11)), dead=(3, 4)))
    assert section.shape == (SAMPLES, 10) and not section[:, 3:5].any() and layout.endswith("2 dead (all-zero) trace(s) kept")


def test_non_standard_header_bytes_are_read_where_the_survey_keeps_them(tmp_path):
    """Inline and crossline numbers at bytes 9 and 21 (as older surveys have them); at the
    standard bytes the file holds zeros, so only the right bytes find the cube."""
    path = write_survey(tmp_path / "old.sgy", grid(range(1, 4), range(1, 6)), header_bytes=(9, 21))
    assert read_segy(path)[1] == "a 2D line: all 15 traces"
    section, layout = read_segy(path, inline=2, headers=SegyHeaders(iline=9, xline=21))
    assert numbers(section) == grid([2], range(1, 6)) and layout == "inline 2"


def test_traces_of_differing_lengths_are_refused(tmp_path):
    path = write_survey(tmp_path / "ragged.sgy", grid([1], range(1, 6)))
    with segyio.open(path, "r+", ignore_geometry=True) as segy:
        segy.header[2] = {segyio.TraceField.TRACE_SAMPLE_COUNT: SAMPLES - 4}
    with pytest.raises(UnreadableImageError, match="traces of differing lengths: trace 2 says 20 samples"):
        read_segy(path)


def test_the_tgs_folder_layout_reads_and_lists_images_without_masks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b", "c"):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), np.full((101, 101), 128, np.uint8))
    for name in ("a", "c"):
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.zeros((101, 101), np.uint8))
    bad: list[dict] = []
    table = read_section_manifest(tmp_path, bad)
    assert [p.split("/")[-1] for p in table["section"]] == ["a.png", "c.png"]
    assert [p.split("/")[-2:] for p in table["mask"]] == [["masks", "a.png"], ["masks", "c.png"]]
    assert len(bad) == 1 and bad[0]["path"].endswith("b.png") and "has no mask" in bad[0]["reason"]


def test_a_folder_of_another_layout_is_refused_by_name(tmp_path):
    from datasets.tables import DataError

    with pytest.raises(DataError, match="without images/ and masks/"):
        read_section_manifest(tmp_path)


@pytest.mark.parametrize("high", [1, 255, 65535])
def test_masks_of_0_1_0_255_and_16_bit_0_65535_are_binary(tmp_path, high):
    mask = np.zeros((10, 12), np.uint16 if high > 255 else np.uint8)
    mask[2:5, 3:9] = high
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "m.png"), mask > 0)


def test_a_mask_of_other_values_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), np.array([[0, 128], [128, 0]], np.uint8))
    with pytest.raises(UnreadableImageError, match="is not a binary mask: it holds 2 values"):
        read_binary_mask(tmp_path / "m.png")


def test_a_section_whose_side_is_not_a_multiple_of_32_is_predicted_whole():
    """A 101 x 101 TGS patch cut into 64-pixel patches and blended back keeps its size and values."""
    amplitude = np.random.default_rng(0).normal(size=(101, 101)).astype(np.float32)
    patches, origins, _ = section_patches(amplitude, 64, 32, "section")
    assert patches.shape[1:] == (64, 64, 1)
    blended = blend_tiles(patches[..., 0], origins, amplitude.shape)
    assert blended.shape == (101, 101)
    np.testing.assert_allclose(blended, (amplitude - amplitude.mean()) / amplitude.std(), atol=1e-4)


@pytest.mark.parametrize("centre, spread", [(128.0, 12.0), (0.0, 3000.0), (0.0, 1.0)])
def test_section_pictures_use_the_datas_own_centre_and_spread(centre, spread):
    """8-bit grey levels near 128, raw amplitudes and z-scores all give a full-contrast picture
    centred on mid-grey. Break tried: the old scaling by the standard deviation alone, which made
    an 8-bit section nearly white (median grey above 200)."""
    amplitude = centre + spread * np.sin(np.linspace(0, 12 * np.pi, 64))[:, None] * np.ones((1, 48))
    picture = section_image(amplitude.astype(np.float32))[..., 0]
    assert picture.min() <= 5 and picture.max() >= 250 and abs(float(np.median(picture)) - 127.5) < 20


def test_a_manifest_can_choose_a_crossline_per_row(tmp_path, cube):
    from datasets.seismic import load_labelled_sections

    mask = tmp_path / "mask.npy"
    np.save(mask, np.zeros((SAMPLES, 4), bool))
    pd.DataFrame({"section": [cube], "mask": [str(mask)], "crossline": [22]}).to_csv(tmp_path / "m.csv", index=False)
    table = read_section_manifest(tmp_path / "m.csv")
    (row, amplitude, salt), = load_labelled_sections(table, [])
    assert numbers(amplitude) == grid(range(10, 14), [22])


def test_predict_writes_the_whole_crossline_and_says_its_shape(tiny_unet_run, tmp_path, capsys):
    """``training.predict`` on the issue's survey line: a probability for every trace, not one."""
    from training.predict import main as predict

    run = tiny_unet_run
    line = write_survey(tmp_path / "line.sgy", grid(range(1000, 1061), [5]), ibm=True)
    assert predict(["--model", str(run), "--section", line, "--out", str(tmp_path / "out")]) == 0
    assert np.load(tmp_path / "out" / "line_probability.npy").shape == (SAMPLES, 61)
    assert "line.sgy: 24 samples x 61 traces (one crossline: all 61 traces)" in capsys.readouterr().out


def test_sections_predicted_together_equal_each_predicted_alone(monkeypatch):
    """The patches of many sections share a call, in groups (of at most five patches here: the
    first two sections, 4 + 1 patches, share one); each section's probability is what it gets
    alone. Break tried: the offset into the shared logits not advanced; the second section then
    gets the first one's first patch."""
    import keras

    import training.tasks.segment as segment
    from datasets.seismic import LabelledSection

    monkeypatch.setattr(segment, "PATCHES_PER_CALL", 5)
    model = keras.Sequential([keras.Input((32, 32, 1)),  # logits = the z-scored patch: every patch differs
                              keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones")])
    rng = np.random.default_rng(1)
    sections = [LabelledSection(str(i), rng.normal(size=shape).astype(np.float32), np.zeros(shape, bool), "val")
                for i, shape in enumerate([(40, 40), (20, 30), (64, 50), (33, 33)])]
    data = segment.SegmentationData(sections, 32, 16, "patch")
    for section, together in zip(sections, data.predict(model, sections, batch_size=4)):
        alone = segment.predict_section(model, section.amplitude, 32, 16, "patch", batch_size=4)
        np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.fixture(scope="module")
def random_cube(tmp_path_factory):
    """A cube of inlines 10..13 by crosslines 20..51 whose inlines hold different noise, and
    the (SAMPLES, 32) section written for each inline."""
    path = tmp_path_factory.mktemp("cube") / "cube.sgy"
    sections = {inline: np.random.default_rng(inline).normal(size=(SAMPLES, 32)).astype(np.float32)
                for inline in range(10, 14)}
    spec = segyio.spec()
    spec.ilines, spec.xlines, spec.samples, spec.format, spec.sorting = list(range(10, 14)), list(range(20, 52)), \
        list(range(SAMPLES)), 5, segyio.TraceSortingFormat.INLINE_SORTING
    with segyio.create(str(path), spec) as segy:
        for index, (inline, crossline) in enumerate(grid(range(10, 14), range(20, 52))):
            segy.header[index] = {segyio.TraceField.INLINE_3D: inline, segyio.TraceField.CROSSLINE_3D: crossline}
            segy.trace[index] = np.ascontiguousarray(sections[inline][:, crossline - 20])
    return path, sections


def test_the_manifests_inline_column_chooses_the_section_read(random_cube, tmp_path):
    """Issue 32, point 6. Break tried: the manifest's ``inline`` ignored (the reader then takes
    the cube's middle inline for every row)."""
    from datasets.seismic import load_labelled_sections

    path, sections = random_cube
    rows = []
    for inline in (10, 12):
        cv2.imwrite(str(tmp_path / f"m{inline}.png"), (sections[inline] > 0).astype(np.uint8) * 255)
        rows.append({"section": str(path), "mask": str(tmp_path / f"m{inline}.png"), "inline": inline})
    bad = []
    loaded = load_labelled_sections(pd.DataFrame(rows), bad)
    assert not bad and len(loaded) == 2
    for (row, amplitude, salt), inline in zip(loaded, (10, 12)):
        np.testing.assert_array_equal(amplitude, sections[inline])
        np.testing.assert_array_equal(salt, sections[inline] > 0)


def test_predict_inline_predicts_the_inline_asked_for(random_cube, tiny_unet_run, tmp_path):
    """Issue 32, point 6. Break tried: ``training.predict`` reading the section without
    ``--inline`` (the middle inline)."""
    import keras

    from training.predict import main as predict_main
    from training.tasks.segment import predict_section

    path, sections = random_cube
    assert predict_main(["--model", str(tiny_unet_run), "--section", str(path), "--inline", "13",
                         "--out", str(tmp_path)]) == 0
    model = keras.saving.load_model(tiny_unet_run / "model.keras", compile=False)
    found = np.load(tmp_path / "cube_probability.npy")
    np.testing.assert_allclose(found, predict_section(model, sections[13], 32, 16, "patch"), atol=1e-6)
    assert np.abs(found - predict_section(model, sections[11], 32, 16, "patch")).max() > 1e-3


def test_nan_and_infinite_samples_are_zeroed_in_what_trains_sections_and_scenes(tmp_path, capsys):
    """Issue 32, point 16: every reader's non-finite handling changes the data trained on, not
    only the count it prints. Break tried: ``np.isnan`` in place of ``~np.isfinite`` (an
    infinity then reaches the z-score and makes the loss NaN)."""
    from datasets.fusion import read_fusion_sample
    from datasets.seismic import load_labelled_sections

    rng = np.random.default_rng(0)
    amplitude = rng.normal(size=(32, 40)).astype(np.float32)
    broken = amplitude.copy()
    broken[3, 4], broken[5, 6], broken[7, 8] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "section.npy", broken)
    cv2.imwrite(str(tmp_path / "mask.png"), (amplitude > 0).astype(np.uint8) * 255)
    (_, read, _), = load_labelled_sections(pd.DataFrame({"section": [str(tmp_path / "section.npy")],
                                                         "mask": [str(tmp_path / "mask.png")]}), [])
    expected = amplitude.copy()
    expected[3, 4] = expected[5, 6] = expected[7, 8] = 0
    np.testing.assert_array_equal(read, expected)
    assert "section.npy: 1 NaN and 2 infinite samples set to 0" in capsys.readouterr().out

    sar = rng.normal(size=(16, 16, 2)).astype(np.float32)
    mwr = rng.normal(size=(4, 4, 14)).astype(np.float32)
    bad_sar, bad_mwr = sar.copy(), mwr.copy()
    bad_sar[0, 0, 1], bad_mwr[1, 1, 3] = np.inf, np.nan
    np.save(tmp_path / "sar.npy", bad_sar)
    np.save(tmp_path / "mwr.npy", bad_mwr)
    sample = read_fusion_sample(str(tmp_path / "sar.npy"), str(tmp_path / "mwr.npy"), None)
    sar[0, 0, 1], mwr[1, 1, 3] = 0, 0
    np.testing.assert_array_equal(sample.sar, sar)
    np.testing.assert_array_equal(sample.mwr, mwr)
