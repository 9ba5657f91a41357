"""Fixtures every test folder shares, the markers' behaviour, two xdist workers when xdist is there, and the order."""
import os
import shutil
from pathlib import Path

import pytest
import torch

from selfsup.data import load_dataset
from selfsup.data.splits import LOCK_ENV

TESTS = Path(__file__).resolve().parent
# Training tests of half a minute to minutes each, run first (see pytest_collection_modifyitems).
LONG_FIRST = ("methods/test_learning.py", "methods/test_learning_dense.py")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WORKERS = 2  # the CI machine's cores; the learning tests are single-threaded (see threads_per_worker)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the option
def pytest_cmdline_main(config):
    """Two pytest-xdist workers unless ``-n`` was given; without xdist (or with ``-p no:xdist``) one process."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):  # absent, or a worker itself
        return
    opt = config.option
    if opt.numprocesses is None and (os.cpu_count() or 1) >= WORKERS and not (opt.usepdb or opt.collectonly):
        opt.numprocesses = WORKERS
        if opt.dist == "no":
            opt.dist = "worksteal"  # a worker that finishes early takes tests from the other's queue


def pytest_collection_modifyitems(config, items):
    """The training tests run first, the quick ones fill in after; browser tests skip without a browser.

    Two xdist workers end the suite together only if the last tests are short: a
    minutes-long case left for last runs alone on one core while the other idles.
    """
    items.sort(key=lambda item: item.path.resolve().relative_to(TESTS).as_posix() not in LONG_FIRST)
    if CHROMIUM is None:
        skip = pytest.mark.skip(
            reason="chromium is not installed (apt-get install -y chromium; scripts/setup.sh does it)"
        )
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless browser that ``browser`` tests drive (they are skipped when there is none)."""
    return CHROMIUM


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core box OpenMP barriers cost seconds.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def test_split_locked():
    """Reading any test split is an error (selfsup.data.splits): choices and learning tests use 'val'.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("test_split_locked")``.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(LOCK_ENV, "1")
        yield


@pytest.fixture(scope="session", autouse=True)
def threads_per_worker():
    """Under pytest-xdist each worker gets its share of the cores, so two workers do not oversubscribe."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    yield


@pytest.fixture(scope="module")
def fmnist_datasets():
    """The first 3000 Fashion-MNIST training and 1000 test images: (train, test) ImageDatasets."""
    train = load_dataset("fashion_mnist", split="train").subset(range(3000))
    test = load_dataset("fashion_mnist", split="test").subset(range(1000))
    return train, test
