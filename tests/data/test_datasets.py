"""The dataset registry: unknown names and splits list the choices."""
import pytest

from selfsup.data import dataset_names, load_dataset
from selfsup.registry import ConfigError


def test_unknown_dataset_name_and_split_list_the_choices():
    assert {"fashion_mnist", "mnist", "cifar10", "cifar100", "stl10", "folder"} <= set(dataset_names())
    with pytest.raises(ConfigError, match=r"unknown dataset 'imagenet'; choose from: .*cifar10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match=r"fashion_mnist has no split 'valid'; choose from: train, test, val, "):
        load_dataset("fashion_mnist", split="valid")
