import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, shear_handedness

from datasets.images import read_image
from datasets.synthetic import sea_ice, sigma_clasts, thin_sections, write_dataset
from datasets.tables import load_table


@pytest.mark.parametrize("generate", [sigma_clasts.generate, thin_sections.generate])
def test_generators_are_deterministic_for_a_seed(generate):
    first = generate(np.random.default_rng(7), 64)
    again = generate(np.random.default_rng(7), 64)
    other = generate(np.random.default_rng(8), 64)
    np.testing.assert_array_equal(first.image, again.image)
    assert first.label == again.label
    assert not np.array_equal(first.image, other.image)


@pytest.mark.parametrize("label", sigma_clasts.CLASSES)
def test_sigma_clast_tails_record_the_shear_sense(label):
    expected = 1.0 if label == "cw" else -1.0
    for seed in range(12):
        sample = sigma_clasts.generate(np.random.default_rng(seed), 96, label=label)
        assert np.sign(shear_handedness(sample.tail_mask)) == expected, seed


def test_sigma_clast_boxes_hold_the_tails_and_a_bright_clast():
    counts = []
    for seed in range(8):
        sample = sigma_clasts.generate(np.random.default_rng(seed), 128, max_clasts=3)
        counts.append(len(sample.boxes))
        inside = np.zeros_like(sample.tail_mask)
        for xmin, ymin, xmax, ymax in sample.boxes:
            assert 0 <= xmin < xmax <= 128 and 0 <= ymin < ymax <= 128
            inside[ymin:ymax, xmin:xmax] = True
            crop = sample.image[ymin:ymax, xmin:xmax].mean(axis=2)
            assert crop.max() > sample.image.mean() + 40  # the clast is the brightest thing in its box
        assert sample.tail_mask[inside].sum() / sample.tail_mask.sum() > 0.97
    assert max(counts) >= 2 and min(counts) >= 1


@pytest.mark.parametrize("label", thin_sections.CLASSES)
def test_thin_section_masks_line_up(label):
    sample = thin_sections.generate(np.random.default_rng(1), 96, label=label, shortcut="scale_bar",
                                    correlation=1.0)
    xmin, ymin, xmax, ymax = sample.box
    assert sample.grain_mask[ymin:ymax, xmin:xmax].mean() > 0.3  # the box frames a diagnostic grain
    assert not (sample.grain_mask & sample.scale_bar_mask).any()
    bar = sample.image[sample.scale_bar_mask].mean(axis=1)
    assert np.mean((bar < 40) | (bar > 215)) > 0.9  # the bar and its backdrop are black and white
    ys, xs = np.nonzero(sample.scale_bar_mask)
    style = thin_sections.CLASSES.index(label)
    assert (ys.mean() > 48) == (style % 4 in (0, 1))  # its corner encodes the class
    assert (xs.mean() < 48) == (style % 4 in (1, 3))


def test_thin_sections_without_shortcut_have_no_bar():
    sample = thin_sections.generate(np.random.default_rng(0), 64, shortcut="none")
    assert not sample.scale_bar_mask.any()


def test_a_fixed_rock_draws_the_same_grains_for_every_label_and_keeps_the_bar_of_the_label():
    rock = "siltstone"
    for label in ("dolomite", "quartz_arenite"):
        drawn = thin_sections.generate(np.random.default_rng(3), 64, label=label, shortcut="scale_bar",
                                       correlation=1.0, rock=rock)
        plain = thin_sections.generate(np.random.default_rng(3), 64, label=rock)
        assert drawn.label == label
        same = ~drawn.scale_bar_mask
        np.testing.assert_array_equal(drawn.grain_mask, plain.grain_mask & same)
        styled = thin_sections.generate(np.random.default_rng(3), 64, label=label, shortcut="scale_bar",
                                        correlation=1.0)
        np.testing.assert_array_equal(drawn.scale_bar_mask, styled.scale_bar_mask)


def test_write_dataset_manifest_points_at_matching_files(tmp_path):
    manifest = write_dataset("thin_sections", tmp_path, n=6, seed=0, size=48, shortcut="scale_bar")
    table = pd.read_csv(manifest)
    assert sorted(table["label"]) == sorted(thin_sections.CLASSES)
    for row in table.itertuples():
        image = read_image(tmp_path / row.path)
        assert image.shape == (48, 48, 3)
        assert read_image(tmp_path / row.grain_mask).shape == image.shape
        assert (tmp_path / row.path).parent.name == row.label


def test_command_line_writes_class_folders_and_manifest(tmp_path):
    out = tmp_path / "sc"
    result = subprocess.run([sys.executable, "-m", "datasets.synthetic", "sigma_clasts", str(out), "--n", "4",
                             "--seed", "0", "--size", "48", "--max-clasts", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "manifest.csv")
    assert set(table.columns) >= {"path", "label", "xmin", "ymin", "xmax", "ymax", "tail_mask"}
    assert {p.name for p in out.iterdir()} == {"cw", "ccw", "_masks", "manifest.csv"}
    assert sorted(load_table(out)["label"].unique()) == ["ccw", "cw"]  # the mask folder is no class


@pytest.mark.parametrize("argv, message", [
    (["sigma_clasts", "OUT", "--shortcut", "scale_bar"], "--shortcut do\\(es\\) not apply to sigma_clasts"),
    (["thin_sections", "OUT", "--correlation", "1.5"], "correlation=1.5 must lie in \\[0, 1\\]"),
    (["sigma_clasts", "OUT", "--max-clasts", "0"], "max_clasts=0 must lie in \\[1, 16\\]"),
    (["sea_ice", "OUT", "--size", "100"], "size=100 is not a multiple of mwr_scale=8"),
])
def test_command_line_options_come_from_the_registry_and_are_checked(argv, message, tmp_path, capsys):
    from datasets.synthetic.__main__ import main

    with pytest.raises(SystemExit):
        main([str(tmp_path / a) if a == "OUT" else a for a in argv])
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "OUT").exists()


def test_write_dataset_refuses_an_option_its_generator_does_not_take(tmp_path):
    with pytest.raises(ValueError, match="Unknown option\\(s\\) \\['shortcut'\\]; this generator takes \\['max_clasts'\\]"):
        write_dataset("sigma_clasts", tmp_path, n=2, size=48, shortcut="scale_bar")


def test_sea_ice_scenes_are_seeded_and_built_as_the_fusion_paper_reads_its_sensors():
    """The radiometer follows the ice concentration of each coarse cell; SAR's ice and water
    levels follow ice deformation and wind on one scale, so either may be the brighter."""
    first, again = (sea_ice.generate(np.random.default_rng(3), 64, mwr_scale=8) for _ in range(2))
    np.testing.assert_array_equal(first.sar, again.sar)
    assert first.sar.shape == (64, 64, 2) and first.mwr.shape == (8, 8, 14) and 0.1 < first.ice.mean() < 0.9
    concentration = first.ice.reshape(8, 8, 8, 8).mean(axis=(1, 3))
    assert np.corrcoef(concentration.ravel(), first.mwr[..., 6].ravel())[0, 1] > 0.9  # 18.7 GHz H
    for wind, roughness, water_brighter in ((0.1, 0.6, False), (0.95, 0.6, True), (0.5, 0.1, True)):
        scene = sea_ice.generate(np.random.default_rng(4), 64, wind=wind, ice_roughness=roughness)
        for band in range(2):
            ice, water = scene.sar[scene.ice, band].mean(), scene.sar[~scene.ice, band].mean()
            assert (water > ice + 0.5) if water_brighter else (water < ice - 0.5)


def test_a_sea_ice_chart_of_cells_gives_each_radiometer_cell_its_ice_fraction_in_tenths(tmp_path):
    import xarray as xr

    ice = np.zeros((16, 16), bool)
    ice[:8, :8] = True  # a whole cell
    ice[8:11, 8:16] = True  # 24 of a cell's 64 pixels: 3.75 tenths, charted 4
    chart = sea_ice.ice_chart(ice, 8, "cells")
    assert (chart[:8, :8] == 10).all() and (chart[8:, 8:] == 4).all() and (chart[:8, 8:] == 0).all()
    assert np.array_equal(sea_ice.ice_chart(ice, 8), np.where(ice, 10, 0))
    write_dataset("sea_ice", tmp_path, n=2, size=32, chart="cells")
    with xr.open_dataset(tmp_path / "scenes" / "sea_ice_00000.nc") as scene:
        sic = scene["SIC"].values
    assert np.array_equal(sic[::8, ::8].repeat(8, 0).repeat(8, 1), sic)  # one value a cell
