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
