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


@pytest.mark.parametrize("override", ["train.min_lr=-1", "train.grad_clip=-1", "train.grad_clip=0", "train.lr=.nan",
                                      "train.lr=.inf", "train.lr=-0.1", "train.ckpt_every=0", "train.log_every=0",
                                      "train.warmup_steps=-5", "train.momentum=1.5", "data.val_fraction=1",
                                      "eval.knn_k=0", "train.batch_size=0"])
def test_numbers_that_would_silently_change_training_are_refused_naming_key_and_range(override):
    key, value = override.split("=")
    with pytest.raises(ConfigError, match=rf"'{key}'=.* must be in [\[(]"):
        load_config("simclr", [override])


def test_every_numeric_run_setting_has_its_range():
    import dataclasses
    import typing

    from selfsup.config import DataConfig, EvalConfig, TrainConfig

    for cls in (DataConfig, TrainConfig, EvalConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            numeric = {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}
            assert not numeric or "interval" in f.metadata, f"{cls.__name__}.{f.name} has no range (config.ranged)"


def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: 0.1\n  steps: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"file '{path}' line \d+ column \d+ is not valid YAML") as err:
        load_config(str(path))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"override 'train.lr=\[' .*not valid YAML"):
        load_config("simclr", ["train.lr=["])
