import pytest

from training.config import ConfigError, TrainConfig, parse_config


def test_yaml_is_read_first_and_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: resnet50\nepochs: 3\nlr: 1\naugment: false\nimage-size: 64\n")
    config = parse_config(["--config", str(path), "--epochs", "5"])
    assert (config.model, config.epochs, config.lr, config.augment, config.image_size) == ("resnet50", 5, 1.0, False, 64)
    assert parse_config(["--config", str(path), "--augment"]).augment is True


def test_defaults_are_the_main_job():
    config = parse_config([])
    assert config == TrainConfig()
    assert (config.model, config.data) == ("sednet", "synthetic:sigma_clasts")


def test_a_models_defaults_sit_between_its_tasks_and_the_users(tmp_path):
    """fusion_aspp trains on sea ice by default; YAML and flags still win."""
    config = parse_config(["--task", "segment", "--model", "fusion_aspp"])
    assert (config.data, config.synthetic_size, config.lr, config.loss) == ("synthetic:sea_ice", 96, 0.01, "bce+dice")
    path = tmp_path / "c.yaml"
    path.write_text("data: scenes.csv\n")
    config = parse_config(["--config", str(path), "--task", "segment", "--model", "fusion_aspp", "--synthetic-size", "64"])
    assert (config.data, config.synthetic_size) == ("scenes.csv", 64)
    assert parse_config(["--task", "segment"]).data == "synthetic:seismic_salt"


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
        parse_config(["--config", str(path)])


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
        parse_config(argv)


def test_wrong_flag_type_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--epochs", "many"])
    assert "invalid int value: 'many'" in capsys.readouterr().err
