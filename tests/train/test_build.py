"""From a config to a method: free-form sections checked against the registries, the dataset's size passed on."""

import pytest
import torch

from selfsup.data.dataset import from_arrays
from selfsup.registry import ConfigError
from selfsup.train.build import load_checked_config, load_train_data, method_from_config


def test_make_method_passes_the_dataset_size_and_the_config_cannot_set_it():
    cfg = load_checked_config("npid", ["backbone.width=0.125"])
    data = from_arrays(torch.randint(0, 256, (37, 28, 28), dtype=torch.uint8))
    method = method_from_config(cfg, data)
    assert method.memory.bank.shape[0] == 37
    with pytest.raises(ConfigError, match="method.num_samples"):
        load_checked_config("npid", ["method.num_samples=37"])
    # takes no num_samples
    rotation = method_from_config(load_checked_config("rotation", ["backbone.width=0.125"]), data)
    assert rotation.training and not any(b.shape[:1] == (37,) for b in rotation.buffers())  # built, nothing per image


def test_builder_sizes_moco_queue_to_the_training_set():
    cfg = load_checked_config("moco", ["data.subset=300", "backbone.width=0.125", "method.queue_size=512"])
    with pytest.warns(UserWarning, match="clamped to 300"):
        moco = method_from_config(cfg, load_train_data(cfg))
    assert len(moco.queue) == 300


def test_unknown_method_option_names_option_and_choices():
    with pytest.raises(ConfigError, match=r"no option 'temprature'.*temperature"):
        load_checked_config("simclr", ["method.temprature=0.1"])


def test_unknown_method_name_lists_methods():
    with pytest.raises(ConfigError, match=r"unknown method 'simclrr'.*rotation.*simclr"):
        load_checked_config("simclr", ["method.name=simclrr"])


def test_wrong_value_type_for_a_backbone_option_is_named():
    with pytest.raises(ConfigError, match=r"'stem'='tiny'"):
        load_checked_config("simclr", ["backbone.stem=tiny"])


def test_unknown_augment_option_is_named():
    with pytest.raises(ConfigError, match=r"augment.*'blurr_p'"):
        load_checked_config("simclr", ["augment.blurr_p=0.5"])


def test_warmup_as_long_as_the_run_is_rejected():
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_checked_config("simclr", ["train.steps=10", "train.warmup_steps=10"])


def test_method_option_value_is_type_checked():
    with pytest.raises(ConfigError, match=r"'temperature'='hot'.*float"):
        load_checked_config("simclr", ["method.temperature=hot"])


def test_augment_option_value_is_type_checked():
    with pytest.raises(ConfigError, match=r"'flip_p'='often'"):
        load_checked_config("simclr", ["augment.flip_p=often"])


@pytest.mark.parametrize("channels_last", [True, False])
def test_train_channels_last_decides_every_convolutions_memory_format(channels_last):
    cfg = load_checked_config("simclr", ["backbone.width=0.125", "train.precision=fp32",
                                         f"train.channels_last={str(channels_last).lower()}"])
    data = from_arrays(torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8))
    method = method_from_config(cfg, data)
    formats = []
    for conv in (m for m in method.backbone.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_hook(lambda m, i, out: formats.append(
            out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()))
    from selfsup.data.batch import Batch

    method(Batch(torch.from_numpy(data.images[:4]).permute(0, 3, 1, 2).contiguous(), torch.arange(4)), 0)
    assert formats and all(f == channels_last for f in formats)


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", ".."])
def test_a_run_name_must_stay_inside_out_dir(name):
    with pytest.raises(ConfigError, match=r"'name'=.* must be a plain folder name"):
        load_checked_config("rotation", [f"name={name}"])


def test_a_bad_backbone_width_fails_before_any_data_is_read(monkeypatch):
    from selfsup.train import build

    monkeypatch.setattr(build, "load_dataset", lambda *a, **k: pytest.fail("data read"))
    with pytest.raises(ConfigError, match=r"'width'=0"):
        load_checked_config("rotation", ["backbone.width=0"])
