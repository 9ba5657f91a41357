"""Where a dataset's files are looked for: a wrong path, an empty folder or a missing root is a clear error."""
import pytest

from selfsup.data import load_dataset


def test_wrong_path_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data folder .*nowhere does not exist"):
        load_dataset("folder", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no images .* found in"):
        load_dataset("folder", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"train_X.bin"):
        load_dataset("stl10", root=tmp_path)
    with pytest.raises(ValueError, match=r"cifar10 needs root="):
        load_dataset("cifar10")
