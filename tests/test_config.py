"""The run config alone (selfsup.config): typed overrides, misspelled keys and values named, YAML 1.2 floats."""
import pytest

from selfsup.config import load_config
from selfsup.registry import ConfigError


def test_override_sets_typed_value():
    cfg = load_config("simclr", ["train.steps=7", "train.warmup_steps=0", "train.lr=1", "backbone.width=0.5"])
    assert cfg.train.steps == 7 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.backbone["width"] == 0.5


def test_misspelled_run_key_names_key_and_suggestion():
    with pytest.raises(ConfigError, match=r"'train.lrr'.*did you mean 'train.lr'"):
        load_config("simclr", ["train.lrr=0.1"])


def test_bad_literal_value_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"train.optimizer.*'sgd', 'adamw', 'lars'"):
        load_config("simclr", ["train.optimizer=adam"])


def test_missing_config_file_is_clear():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("nope/missing.yaml")
    with pytest.raises(ConfigError, match="bundled"):
        load_config("no_such_method")


def test_exponent_without_dot_is_a_float():
    cfg = load_config("simclr", ["train.lr=1e-3", "method.temperature=2e-1"])
    assert cfg.train.lr == 1e-3 and cfg.method["temperature"] == 0.2
