"""Building blocks shared by several methods: heads, gathers, memory banks, queues, shuffled BN, EMA copies."""
from selfsup.nn.distributed import gather, gather_with_grad, world_size
from selfsup.nn.ema import momentum_copy
from selfsup.nn.heads import mlp
from selfsup.nn.memory_bank import MemoryBank
from selfsup.nn.queue import FeatureQueue
from selfsup.nn.shuffle_bn import grouped_forward, shuffled_forward

__all__ = ["FeatureQueue", "MemoryBank", "gather", "gather_with_grad", "grouped_forward", "mlp", "momentum_copy",
           "shuffled_forward", "world_size"]
