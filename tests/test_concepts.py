"""``python -m explain.concepts``: the equations by hand, the procedural textures, one real run
on a trained regressor with its cache, and the bad inputs."""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np
import pandas as pd
import pytest

from datasets.synthetic import write_dataset
from datasets.synthetic.textures import CLASSES, generate
from explain.concepts import _at_peaks, affinity, class_distances, lot_relevance
from explain.concepts.__main__ import main as concepts


def test_class_distances_average_each_class_k_nearest():
    """Break tried: the mean over every member of a class instead of its k nearest."""
    rng = np.random.default_rng(0)
    data, textures = rng.normal(size=(4, 3)), rng.normal(size=(9, 3))
    classes = np.array(["a"] * 5 + ["b"] * 4)
    got = class_distances(data, textures, classes, ["a", "b"], k=2, metric="euclidean")
    for column, name in enumerate("ab"):
        members = textures[classes == name]
        expected = np.sort(np.linalg.norm(data[:, None] - members[None], axis=-1), axis=1)[:, :2].mean(1)
        np.testing.assert_allclose(got[:, column], expected, rtol=1e-6)


def test_relevance_divides_by_the_lots_mean_and_affinity_is_minus_the_centred_cosine():
    """A texture that strong lots are close to gets affinity +1; one they are far from -1; one
    that does not vary over lots NaN. Break tried: eq. 4 without the sign turned (+1 and -1 swap)."""
    lots = np.array(["x", "x", "y", "z"])
    # per image: distance to "near_strong", "far_strong", "flat"
    distances = np.array([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0], [2.0, 2.0, 2.0], [3.0, 1.0, 2.0]])
    table = lot_relevance(distances, lots, ["near_strong", "far_strong", "flat"])
    np.testing.assert_allclose(table["relevance"].loc["x"], [0.5, 1.5, 1.0])
    target = pd.Series({"x": 18.0, "y": 11.0, "z": 4.0})
    result = affinity(table["relevance"], target)
    assert result["near_strong"] == pytest.approx(1.0) and result["far_strong"] == pytest.approx(-1.0)
    assert np.isnan(result["flat"])


def test_the_vector_at_the_peak_is_read_from_the_stage_cell_that_covers_it():
    """A 16 px map peaking at (x 13, y 2) falls in cell (row 0, col 3) of a 4x4 stage and in
    (row 1, col 6) of an 8x8 one. Break tried: rows and columns swapped."""
    maps = np.zeros((1, 16, 16), np.float32)
    maps[0, 2, 13] = 1
    grid = lambda side: (np.arange(side)[:, None] * 100 + np.arange(side)[None, :])[None, ..., None].astype(float)
    vectors, peaks = _at_peaks(maps, {"coarse": grid(4), "fine": grid(8)}, ["coarse", "fine"])
    assert vectors["coarse"][0, 0] == 3 and vectors["fine"][0, 0] == 106
    np.testing.assert_allclose(peaks, [[13.5 / 16, 2.5 / 16]])


def test_every_texture_class_is_drawn_and_seeded():
    """Every class shows a pattern, not just the sensor noise (std 3): its spread is over twice
    that. Break tried: a drawer that returns an empty canvas."""
    for name in CLASSES:
        first, again = (generate(np.random.default_rng(3), name, 48) for _ in range(2))
        assert first.shape == (48, 48, 3) and first.dtype == np.uint8 and first.std() > 6, name
        np.testing.assert_array_equal(first, again)


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    """Two images of each procedural class and photograph at 48 px."""
    return write_dataset("textures", tmp_path_factory.mktemp("textures"), n=2 * len(CLASSES), seed=0,
                         size=48).parent


def _concepts(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = concepts(args)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def concept_report(regress_run, textures, tmp_path_factory):
    """The report on the regression test run's own split (with its lot of one image), twice."""
    run_dir, _ = regress_run
    out = tmp_path_factory.mktemp("concepts")
    args = ["--model", str(run_dir), "--data", str(run_dir / "split.csv"), "--group-column", "group",
            "--textures", str(textures), "--out", str(out), "--k", "2", "--grids", "2"]
    first = _concepts(args)
    first_strength = pd.read_csv(out / "texture_strength.csv")
    second = _concepts(args)
    return out, (*first, first_strength), second


def test_the_report_holds_every_table_chart_and_grid(concept_report, regress_run):
    out, (code, printed, _), _ = concept_report
    assert code == 0, printed
    split = pd.read_csv(regress_run[0] / "split.csv")
    strength = pd.read_csv(out / "texture_strength.csv", index_col="texture")
    assert sorted(strength.index) == sorted(CLASSES) and "combined" in strength.columns
    assert strength.drop(columns="combined").shape[1] >= 2  # one column per stage
    assert ((strength.abs() <= 1 + 1e-9) | strength.isna()).all().all()
    lots = pd.read_csv(out / "lot_distances.csv")
    assert set(lots["lot"]) == set(split["group"]) and set(lots["class"]) == set(CLASSES)
    neighbours = pd.read_csv(out / "neighbours.csv")
    assert neighbours.groupby(["file", "stage"])["rank"].max().eq(2).all()
    assert len(list((out / "neighbours").glob("*.png"))) == 2
    page = (out / "report.html").read_text()
    assert "affinity" in page and "texture_strength.png" in page and "lot_textures.png" in page
    assert (out / "lot_relevance.png").is_file() and (out / "lot_textures.png").is_file()
    assert "note: 1 lot(s) have a single image (lot_single)" in printed


def test_the_relevance_in_the_report_follows_from_its_neighbour_distances(concept_report):
    """The lot table is recomputed from the per-image class distances of one stage."""
    out, _, _ = concept_report
    lots = pd.read_csv(out / "lot_distances.csv")
    stage = lots["stage"].iloc[0]
    table = lots[lots["stage"] == stage].pivot(index="lot", columns="class", values="distance")
    relevance = lots[lots["stage"] == stage].pivot(index="lot", columns="class", values="relevance")
    np.testing.assert_allclose(relevance, table.div(table.mean(axis=1), axis=0), rtol=1e-6)
    target = lots[lots["stage"] == stage].groupby("lot")["cps"].first()
    strength = pd.read_csv(out / "texture_strength.csv", index_col="texture")[stage]
    np.testing.assert_allclose(affinity(relevance, target).reindex(strength.index), strength, atol=1e-4)


def test_a_second_report_reuses_the_cached_activations(concept_report):
    """Break tried: a cache key that includes the output folder's time (never reused)."""
    out, (_, first, first_strength), (code, second) = concept_report
    assert code == 0
    assert "Reusing the cached activations" not in first
    assert second.count("Reusing the cached activations") == 2
    pd.testing.assert_frame_equal(pd.read_csv(out / "texture_strength.csv"), first_strength)


def test_bad_texture_folders_are_refused_by_name(regress_run, textures, tmp_path, capsys):
    run_dir, _ = regress_run
    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "single"
    shutil.copytree(textures / "dotted", single / "dotted")
    common = ["--model", str(run_dir), "--data", str(run_dir / "split.csv"), "--out", str(tmp_path / "out")]
    assert _concepts([*common, "--textures", str(empty)])[0] == 2
    assert f"No class folders in {empty}" in capsys.readouterr().err
    assert _concepts([*common, "--textures", str(single)])[0] == 2
    assert f"--textures {single} has one class (dotted)" in capsys.readouterr().err
    assert _concepts([*common, "--textures", str(textures), "--target-column", "strength"])[0] == 2
    assert "has no column 'strength' to regress" in capsys.readouterr().err


def test_saliency_raise_reads_the_features_at_the_peak_of_gated_fastcam(regress_run, textures, tmp_path):
    """Break tried: --saliency ignored (the plain Fast-CAM peak used, and its cache reused)."""
    from datasets.pipeline import for_model, load_example, stack_inputs
    from explain.fastcam import fastcam_gradcam
    from explain.loading import load_model
    from explain.targets import ScalarTarget

    run_dir, _ = regress_run
    args = ["--model", str(run_dir), "--data", str(run_dir / "split.csv"), "--group-column", "group",
            "--textures", str(textures), "--out", str(tmp_path), "--k", "2", "--grids", "0"]
    assert _concepts(args)[0] == 0
    code, printed = _concepts([*args, "--saliency", "raise"])
    assert code == 0 and "Reusing" not in printed
    assert "gated by what raises cps" in (tmp_path / "report.html").read_text()
    points = pd.read_csv(tmp_path / "salient_points.csv").head(4)
    loaded = load_model(run_dir)
    batch = stack_inputs([load_example(p, np.full(4, np.nan, np.float32), loaded.spec) for p in points["file"]],
                         loaded.spec)
    maps = fastcam_gradcam(loaded.model, for_model(batch), ScalarTarget(1.0))["whole"]
    side = maps.shape[1]
    y, x = np.divmod(maps.reshape(len(points), -1).argmax(1), side)
    np.testing.assert_allclose(points["peak_x"], (x + 0.5) / side, atol=1e-4)
    np.testing.assert_allclose(points["peak_y"], (y + 0.5) / side, atol=1e-4)


def test_a_classifier_is_refused_a_saliency_gated_by_a_regression_sign(regress_run, textures, tmp_path, capsys):
    from models import build_model

    classifier = tmp_path / "classifier.keras"
    build_model("sednet", 2, (32, 32, 3), weights="none", local_size=16).save(classifier)
    run_dir, _ = regress_run
    code, _ = _concepts(["--model", str(classifier), "--data", str(run_dir / "split.csv"), "--textures",
                         str(textures), "--out", str(tmp_path / "out"), "--saliency", "lower"])
    assert code == 2
    assert f"{classifier} is a classifier, so pass --saliency fastcam" in capsys.readouterr().err


def test_properties_get_the_same_affinity_against_their_lot_means(regress_run, sem_lots, textures, tmp_path, capsys):
    """The synthetic lots' pitting and cracks beside cps. Break tried: the affinity taken against the
    target for every property (the columns are then equal)."""
    run_dir, _ = regress_run
    common = ["--model", str(run_dir), "--data", str(sem_lots), "--textures", str(textures), "--k", "2",
              "--grids", "0"]
    code, _ = _concepts([*common, "--out", str(tmp_path), "--properties", "pitting, cracks"])
    assert code == 0
    table = pd.read_csv(tmp_path / "texture_properties.csv")
    assert list(table.columns) == ["texture", "stage", "cps", "pitting", "cracks"]
    relevance = pd.read_csv(tmp_path / "lot_distances.csv").pivot_table(index="lot", columns=["stage", "class"],
                                                                        values="relevance")
    by_stage = {stage: relevance[stage] for stage in relevance.columns.levels[0]}
    by_stage["combined"] = relevance.T.groupby(level="class").mean().T
    assert set(table["stage"]) == set(by_stage)
    lots = pd.read_csv(sem_lots).groupby("lot")[["cps", "pitting", "cracks"]].mean()
    for stage, rows in table.groupby("stage"):
        for column in ("cps", "pitting", "cracks"):
            np.testing.assert_allclose(rows[column], affinity(by_stage[stage], lots[column]).loc[rows["texture"]],
                                       atol=1e-4)
    assert "Affinity with the lots' other properties" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "texture_properties.png").is_file()

    assert _concepts([*common, "--out", str(tmp_path / "x"), "--properties", "porosity"])[0] == 2
    assert f"--properties porosity: {sem_lots} has no such column; it has ['path', 'label'" in capsys.readouterr().err
    broken = tmp_path / "broken.csv"
    pd.read_csv(sem_lots).assign(path=lambda t: [str(sem_lots.parent / p) for p in t["path"]],
                                 cracks=lambda t: t["cracks"].astype(object).where(t.index != 4, "thin")
                                 ).to_csv(broken, index=False)
    common[common.index(str(sem_lots))] = str(broken)
    assert _concepts([*common, "--out", str(tmp_path / "y"), "--properties", "cracks"])[0] == 2
    assert "--properties cracks: broken.csv line 6 has 'thin', not a number" in capsys.readouterr().err


def test_unreadable_textures_are_listed_and_nothing_is_changed(regress_run, textures, tmp_path):
    """Issue 32, point 13: a corrupt texture image, an empty one and a text file are each a line
    of bad_files.csv and the report is made from the rest; no file of the user's changes."""
    from conftest import snapshot

    run_dir, _ = regress_run
    folder = tmp_path / "textures"
    shutil.copytree(textures, folder)
    (folder / "dotted" / "corrupt.png").write_bytes(next((folder / "dotted").glob("*.png")).read_bytes()[:60])
    (folder / "dotted" / "empty.png").write_bytes(b"")
    (folder / "dotted" / "notes.txt").write_text("from the 2019 campaign")
    before = snapshot(folder), snapshot(run_dir)
    code, printed = _concepts(["--model", str(run_dir), "--data", str(run_dir / "split.csv"), "--group-column",
                               "group", "--textures", str(folder), "--out", str(tmp_path / "out"), "--k", "2",
                               "--grids", "0"])
    assert code == 0, printed
    bad = pd.read_csv(tmp_path / "out" / "bad_files.csv")
    reasons = dict(zip(bad["path"].map(lambda p: p.rsplit("/", 1)[-1]), bad["reason"]))
    assert "corrupt" in reasons["corrupt.png"] and "empty file" in reasons["empty.png"]
    assert "unsupported file type" in reasons["notes.txt"]
    assert (snapshot(folder), snapshot(run_dir)) == before
