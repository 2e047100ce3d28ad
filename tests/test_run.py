"""End to end: ``python -m training.run`` on tiny configs, its artefacts and its errors."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training.run import main


@pytest.mark.slow
def test_run_writes_every_artefact(sednet_run):
    run_dir, stdout = sednet_run
    for name in ("model.keras", "export/saved_model.pb", "config.yaml", "split.csv", "bad_files.csv",
                 "metrics.json"):
        assert (run_dir / name).exists(), name
    for split in ("train", "val", "test"):
        assert (run_dir / f"confusion_matrix_{split}.png").stat().st_size > 1000
        matrix = pd.read_csv(run_dir / f"confusion_matrix_{split}.csv", index_col=0)
        assert list(matrix.columns) == ["ccw", "cw"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["count"] == 5 and metrics["train"]["count"] == 14
    for split in ("train", "val", "test"):
        assert {"accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"} <= set(metrics[split])
        assert set(metrics[split]["per_class"]["cw"]) == {"precision", "recall", "f1", "support"}
        assert np.isfinite(metrics[split]["loss"])
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()  # the flag overrode the YAML
    assert set(pd.read_csv(run_dir / "split.csv")["split"]) == {"train", "val", "test"}
    assert f"tensorboard --logdir {run_dir.parent}" in stdout.strip().splitlines()[-1]
    assert str(run_dir / "export") in stdout


@pytest.mark.slow
def test_tensorboard_has_loss_accuracy_and_f1_for_train_and_validation(sednet_run):
    run_dir, _ = sednet_run
    for subdir in ("train", "validation"):
        events = EventAccumulator(str(run_dir / subdir)).Reload()
        tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
        assert {"epoch_loss", "epoch_accuracy", "epoch_f1_macro"} <= tags, tags


@pytest.mark.slow
def test_saved_model_in_a_fresh_process_predicts_like_model_keras(sednet_run, tmp_path):
    run_dir, _ = sednet_run
    rng = np.random.default_rng(1)
    inputs = {"whole": (rng.random((3, 32, 32, 3)) * 255).astype("float32"),
              "local": (rng.random((3, 16, 16, 3)) * 255).astype("float32")}
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = textwrap.dedent(f"""
        import keras, models, numpy as np, tensorflow as tf
        keras.saving.load_model({str(run_dir / 'model.keras')!r})  # `import models` is all it needs
        serving = tf.saved_model.load({str(run_dir / 'export')!r}).signatures["serving_default"]
        inputs = dict(np.load({str(tmp_path / 'inputs.npz')!r}))
        assert sorted(serving.structured_input_signature[1]) == ["local", "whole"]
        outputs = serving(**{{k: tf.constant(v) for k, v in inputs.items()}})
        np.save({str(tmp_path / 'out.npy')!r}, next(iter(outputs.values())).numpy())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = keras.saving.load_model(run_dir / "model.keras").predict(inputs, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-4, atol=1e-4)


def test_an_unwritable_log_root_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["--logdir", str(blocker / "logs")]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_a_data_error_leaves_no_run_folder_and_an_existing_run_gets_a_suffix(tmp_path, capsys):
    logdir = tmp_path / "logs"
    (logdir / "mine").mkdir(parents=True)
    (logdir / "mine" / "notes.txt").write_text("keep me")
    assert main(["--data", str(tmp_path / "nowhere"), "--logdir", str(logdir), "--run-name", "mine"]) == 2
    assert "Data path does not exist" in capsys.readouterr().err
    assert (logdir / "mine" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in logdir.iterdir()) == ["mine"]  # the suffixed mine-2 was removed again


def test_metrics_json_agrees_with_scikit_learn_and_tensorboard(sednet_run):
    """The test split re-predicted from model.keras and scored by scikit-learn gives metrics.json's
    test scores; the validation scores TensorBoard shows at the best epoch (lowest validation
    loss, the epoch model.keras is from) are metrics.json's validation scores. Broken on purpose:
    support-weighted instead of macro precision in ``split_metrics`` fails this."""
    from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support

    from datasets.images import read_image
    from datasets.pipeline import for_model, model_inputs, stack_inputs
    from explain.loading import load_model
    from explain.metrics import softmax

    run_dir, _ = sednet_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    loaded = load_model(run_dir)
    test = pd.read_csv(run_dir / "split.csv").query("split == 'test'")
    boxes = test.reindex(columns=["xmin", "ymin", "xmax", "ymax"]).to_numpy(np.float32)
    inputs = stack_inputs([model_inputs(read_image(p), b, loaded.spec) for p, b in zip(test["path"], boxes)],
                          loaded.spec)
    probabilities = softmax(loaded.model.predict(for_model(inputs), verbose=0))
    truth = test["label"].map(loaded.class_names.index).to_numpy()
    predicted = probabilities.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=[0, 1], zero_division=0)
    scores = metrics["test"]
    assert scores["count"] == len(test) and scores["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        assert scores[f"{name}_macro"] == pytest.approx(values.mean(), abs=1e-6), name
        for k, class_name in enumerate(loaded.class_names):
            assert scores["per_class"][class_name][name] == pytest.approx(values[k], abs=1e-6)
    assert scores["loss"] == pytest.approx(log_loss(truth, probabilities, labels=[0, 1]), abs=1e-4)

    events = EventAccumulator(str(run_dir / "validation")).Reload()
    value = {tag: {e.step: float(tf_value(e)) for e in events.Tensors(tag)}
             for tag in events.Tags()["tensors"] if tag == "epoch_loss" or tag.startswith("scores/")}
    best = min(value["epoch_loss"], key=value["epoch_loss"].get)
    for name in ("precision", "recall", "f1"):
        assert value[f"scores/{name}_macro"][best] == pytest.approx(metrics["val"][f"{name}_macro"], abs=1e-5), name


def tf_value(event) -> np.ndarray:
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)
