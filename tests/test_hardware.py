"""The allocator setting that training relies on: freed batch-sized CPU buffers are reused, not faulted in again."""
import resource
import sys

import pytest
import torch

from selfsup.hardware import keep_freed_cpu_memory


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_freed_cpu_buffers_come_back_without_page_faults():
    """Batch-sized buffers, allocated and freed step after step, reuse pages: no fresh mmap to fault in again."""
    assert keep_freed_cpu_memory()
    size = 64 * 2**20 // 4  # 64 MB of float32, over glibc's largest mmap threshold (32 MB): 16384 pages
    for _ in range(5):  # warm-up: small allocations may split a freed buffer, so a second one can be needed
        torch.ones(size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        torch.ones(size)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < size * 4 // 4096, faults  # fresh mmaps fault in all 4 x 16384 pages


@pytest.mark.parametrize("setting, idle, expected", [
    (None, 1.0, 1), ("auto", 1.2, 1), ("auto", 2.0, 2), ("all", 0.0, 2), ("3", 0.0, 3), (None, 9.0, 2),
])
def test_threads_follow_the_idle_cores_and_never_rise_above_the_start(monkeypatch, setting, idle, expected):
    from selfsup import hardware

    monkeypatch.setattr(hardware, "idle_cores", lambda seconds=0.3: idle)
    if setting is None:
        monkeypatch.delenv(hardware.THREADS_ENV, raising=False)
    else:
        monkeypatch.setenv(hardware.THREADS_ENV, setting)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert hardware.choose_threads() == expected == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_bad_thread_setting_is_named(monkeypatch):
    from selfsup import hardware
    from selfsup.registry import InputError

    monkeypatch.setenv(hardware.THREADS_ENV, "many")
    with pytest.raises(InputError, match="SELFSUP_THREADS='many'"):
        hardware.choose_threads()
