import numpy as np

from selfsup.schedules import ema_momentum, warmup_cosine


def test_warmup_cosine_shape_and_endpoints():
    lr = warmup_cosine(1.0, 100, warmup_steps=10, final=0.01)
    assert lr.shape == (100,)
    assert lr[0] == 0.0 and np.isclose(lr[10], 1.0)
    assert np.all(np.diff(lr[:11]) > 0) and np.all(np.diff(lr[10:]) < 0)
    assert 0.01 < lr[-1] < 0.02


def test_ema_momentum_rises_from_base_to_one():
    m = ema_momentum(0.99, 50)
    assert np.isclose(m[0], 0.99) and m[-1] > 0.9999 and np.all(np.diff(m) >= 0)
