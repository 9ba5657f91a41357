import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core box OpenMP barriers cost seconds.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def threads_per_worker():
    """Under pytest-xdist each worker gets its share of the cores, so two workers do not oversubscribe."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    yield


def pytest_collection_modifyitems(items):
    """The training tests (half a minute to minutes each) run first, the quick ones fill in after.

    Two xdist workers end the suite together only if the last tests are short: a
    minutes-long case left for last runs alone on one core while the other idles.
    """
    items.sort(key=lambda item: item.path.stem not in ("test_learning", "test_learning_dense"))
