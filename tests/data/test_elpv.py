"""The ELPV solar-cell images (the offline transfer target): a seeded, stratified, disjoint train/test split."""
import numpy as np
import pytest

from selfsup.data import load_dataset


def test_elpv_split_is_seeded_stratified_and_disjoint():
    pytest.importorskip("elpv_dataset")
    train, test = (load_dataset("elpv", split=s, resolution=16) for s in ("trainval", "test"))
    assert len(train) + len(test) == 2624 and train.classes == test.classes and len(train.classes) == 4
    train_share = np.bincount(train.labels) / np.bincount(np.concatenate([train.labels, test.labels]))
    assert np.allclose(train_share, 0.75, atol=0.02)  # every defect grade split 75/25
    assert not {a.tobytes() for a in test.images[:200]} & {a.tobytes() for a in train.images}
    with pytest.raises(ValueError, match="split"):
        load_dataset("elpv", split="validation")
