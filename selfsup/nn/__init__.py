"""Building blocks shared by several methods: heads, gathers, memory banks, (later) queues, EMA, Sinkhorn."""
from selfsup.nn.distributed import gather_with_grad, world_size
from selfsup.nn.heads import mlp
from selfsup.nn.memory_bank import MemoryBank

__all__ = ["MemoryBank", "gather_with_grad", "mlp", "world_size"]
