import pytest

from selfsup.train.build import load_checked_config
from selfsup.registry import ConfigError


def test_bundled_configs_load_and_validate():
    for name in ("simclr", "rotation", "demo"):
        cfg = load_checked_config(name)
        assert cfg.method["name"] in ("simclr", "rotation")


def test_override_sets_typed_value():
    cfg = load_checked_config("simclr", ["train.steps=7", "train.warmup_steps=0", "train.lr=1", "backbone.width=0.5"])
    assert cfg.train.steps == 7 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.backbone["width"] == 0.5


def test_misspelled_run_key_names_key_and_suggestion():
    with pytest.raises(ConfigError, match=r"'train.lrr'.*did you mean 'train.lr'"):
        load_checked_config("simclr", ["train.lrr=0.1"])


def test_bad_literal_value_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"train.optimizer.*'sgd', 'adamw', 'lars'"):
        load_checked_config("simclr", ["train.optimizer=adam"])


def test_unknown_method_option_names_option_and_choices():
    with pytest.raises(ConfigError, match=r"no option 'temprature'.*temperature"):
        load_checked_config("simclr", ["method.temprature=0.1"])


def test_unknown_method_name_lists_methods():
    with pytest.raises(ConfigError, match=r"unknown method 'simclrr'.*rotation.*simclr"):
        load_checked_config("simclr", ["method.name=simclrr"])


def test_wrong_value_type_for_backbone_option():
    with pytest.raises(ConfigError, match=r"'stem'='tiny'"):
        load_checked_config("simclr", ["backbone.stem=tiny"])


def test_unknown_augment_option():
    with pytest.raises(ConfigError, match=r"augment.*'blurr_p'"):
        load_checked_config("simclr", ["augment.blurr_p=0.5"])


def test_missing_config_file_is_clear():
    with pytest.raises(ConfigError, match="does not exist"):
        load_checked_config("nope/missing.yaml")
    with pytest.raises(ConfigError, match="bundled"):
        load_checked_config("no_such_method")


def test_warmup_longer_than_run_rejected():
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_checked_config("simclr", ["train.steps=10", "train.warmup_steps=10"])


def test_method_option_value_is_type_checked():
    with pytest.raises(ConfigError, match=r"'temperature'='hot'.*float"):
        load_checked_config("simclr", ["method.temperature=hot"])


def test_augment_option_value_is_type_checked():
    with pytest.raises(ConfigError, match=r"'flip_p'='often'"):
        load_checked_config("simclr", ["augment.flip_p=often"])


def test_exponent_without_dot_is_a_float():
    cfg = load_checked_config("simclr", ["train.lr=1e-3", "method.temperature=2e-1"])
    assert cfg.train.lr == 1e-3 and cfg.method["temperature"] == 0.2
