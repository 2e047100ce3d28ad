import pytest
import yaml

from training.config import ConfigError, TrainConfig, build_parser, parse_config
from training.tasks import TASKS
from training.tasks.classify import ClassifyOptions


def test_yaml_is_read_first_and_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: resnet50\nepochs: 3\nlr: 1\naugment: false\nimage-size: 64\n")
    config = parse_config(["--config", str(path), "--epochs", "5"], TASKS)
    assert (config.model, config.epochs, config.lr, config.augment, config.image_size) == ("resnet50", 5, 1.0, False, 64)
    assert parse_config(["--config", str(path), "--augment"], TASKS).augment is True


def test_defaults_are_the_main_job():
    config = parse_config([], TASKS)
    assert config == TrainConfig(options=ClassifyOptions())
    assert (config.model, config.data) == ("sednet", "synthetic:sigma_clasts")


def test_a_models_defaults_sit_between_its_tasks_and_the_users(tmp_path):
    """fusion_aspp trains on sea ice by default; YAML and flags still win."""
    config = parse_config(["--task", "segment", "--model", "fusion_aspp"], TASKS)
    assert (config.data, config.synthetic_size, config.lr, config.options.resolved_loss()) == (
        "synthetic:sea_ice", 96, 0.01, "bce+dice")
    assert config.options.patch_cells == 12  # the synthetic set's own default, found through the model's data
    path = tmp_path / "c.yaml"
    path.write_text("data: scenes.csv\n")
    config = parse_config(["--config", str(path), "--task", "segment", "--model", "fusion_aspp", "--synthetic-size", "64"], TASKS)
    assert (config.data, config.synthetic_size) == ("scenes.csv", 64)
    assert parse_config(["--task", "segment"], TASKS).data == "synthetic:seismic_salt"


@pytest.mark.parametrize("text, message", [
    ("epoks: 3\n", "unknown key 'epoks'"),
    ("epochs: three\n", "epochs='three' should be of type int"),
    ("augment: 1\n", "augment=1 should be of type bool"),
    ("- a\n- b\n", "must hold a mapping"),
    ("epochs: [\n", "not valid YAML"),
])
def test_bad_yaml_fails_with_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse_config(["--config", str(path)], TASKS)


@pytest.mark.parametrize("argv, message", [
    (["--model", "alexnet"], "model='alexnet' is not one of"),
    (["--epochs", "0"], "epochs=0 must be >= 1"),
    (["--model", "inceptionv3", "--image-size", "64"], "image_size=64 must be >= 75 .the minimum input of inceptionv3"),
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--dropout", "1"], r"dropout=1.0 must be in \[0, 1\)"),
    (["--split", "0.6,0.4"], "split='0.6,0.4' must be three positive fractions"),
    (["--data", "synthetic:granite"], "the synthetic sets are"),
    (["--config", "/no/such.yaml"], "Config file not found"),
])
def test_bad_values_fail_before_any_work(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(argv, TASKS)


def test_wrong_flag_type_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--epochs", "many"], TASKS)
    assert "invalid int value: 'many'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--task", "classify", "--loss", "dice"], "--loss belongs to --task segment, not --task classify"),
    (["--task", "segment", "--target-column", "uts"], "--target-column belongs to --task regress, not --task segment"),
    (["--task", "regress", "--mirror-pairs", "cw:ccw"], "--mirror-pairs belongs to --task classify or detect"),
    (["--task", "detect", "--preset", "sem-study"], r"preset='sem-study': --task detect has no presets"),
    (["--task", "classify", "--preset", "sem-study"], r"--task classify has the presets \['salt-encoder'\]"),
])
def test_an_option_of_another_task_is_refused_naming_its_task(argv, message):
    """Break tried: the check of foreign options removed; the flag is then dropped without a
    word (these and the YAML case fail)."""
    with pytest.raises(ConfigError, match=message):
        parse_config(argv, TASKS)


def test_the_command_refuses_another_tasks_flag_in_one_line_with_exit_2(capsys):
    from training.run import main

    assert main(["--task", "classify", "--loss", "dice"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--loss belongs to --task segment" in err


def test_yaml_takes_a_block_per_task_and_only_the_chosen_tasks_block_applies(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 4\nsegment:\n  loss: dice\n  patch-size: 96\nregress:\n  target_column: uts\n")
    segment = parse_config(["--config", str(path), "--task", "segment", "--stride", "48"], TASKS)
    assert (segment.epochs, segment.options.loss, segment.options.patch_size, segment.options.stride) == (
        4, "dice", 96, 48)
    assert parse_config(["--config", str(path), "--task", "regress"], TASKS).options.target_column == "uts"
    assert parse_config(["--config", str(path)], TASKS).options.mirror_pairs == "auto"  # classify: its own only


@pytest.mark.parametrize("text, message", [
    ("loss: dice\n", "loss belongs to --task segment, not --task classify"),
    ("segment:\n  los: dice\n", "unknown key 'los' in the segment block"),
    ("segment:\n  patch_size: big\n", "patch_size='big' should be of type int"),
    ("segment: dice\n", "the segment block must be a mapping"),
])
def test_bad_task_blocks_are_named(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse_config(["--config", str(path)], TASKS)


def test_a_saved_config_reads_back_as_the_same_config(tmp_path):
    config = parse_config(["--task", "segment", "--loss", "focal", "--patch-size", "96", "--epochs", "3"], TASKS)
    config.to_yaml(tmp_path / "config.yaml")
    assert "segment:\n  loss: focal\n" in (tmp_path / "config.yaml").read_text()
    assert parse_config(["--config", str(tmp_path / "config.yaml")], TASKS) == config


def test_resume_compares_only_what_the_run_uses(tmp_path):
    """A run saved before options had blocks holds every task's options at its top: another
    task's (loss for a classifier) must not block the resume, its own still does. Break tried:
    comparing every saved key, as before; the foreign ``loss`` is then reported."""
    from training.run_folders import config_changes

    config = parse_config(["--epochs", "3"], TASKS)
    saved = {k: v for k, v in config.to_dict().items() if k != "classify"}
    saved.update(config.to_dict()["classify"], loss="dice", patch_size=96)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert config_changes(tmp_path, config) == []
    saved["mirror_pairs"] = "none"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert config_changes(tmp_path, config) == ["mirror_pairs"]


def test_every_bare_default_trains_offline():
    """No task's default model needs a download (regress used to start ResNet-50 from ImageNet);
    the study's setting is one preset away."""
    from models import MODELS

    for name, task in TASKS.items():
        config = parse_config(["--task", name], TASKS)
        assert config.weights == "default" and MODELS[config.model].default_weights is None, name
    study = parse_config(["--task", "regress", "--preset", "sem-study"], TASKS)
    assert (study.model, study.weights, study.optimizer, study.lr) == ("resnet50", "imagenet", "sgd", 0.01)
    assert parse_config(["--task", "regress", "--preset", "sem-study", "--lr", "0.1"], TASKS).lr == 0.1
    assert "--preset sem-study: the SEM study's setting" in " ".join(build_parser(TASKS).format_help().split())


def test_the_optimizer_names_are_the_optimizers_the_trainer_builds():
    from training.config import OPTIMIZERS
    from training.phases import OPTIMIZER_FACTORIES

    assert sorted(OPTIMIZERS) == sorted(OPTIMIZER_FACTORIES)
