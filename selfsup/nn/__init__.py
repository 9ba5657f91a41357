"""Building blocks shared by several methods: heads, gathers, (later) memory banks, queues, EMA, Sinkhorn."""
from selfsup.nn.distributed import gather_with_grad, world_size
from selfsup.nn.heads import mlp

__all__ = ["gather_with_grad", "mlp", "world_size"]
from selfsup.nn.distributed import gather
from selfsup.nn.queue import FeatureQueue
from selfsup.nn.shuffle_bn import grouped_forward, shuffled_forward

__all__ += ["FeatureQueue", "gather", "grouped_forward", "shuffled_forward"]
from selfsup.nn.ema import momentum_copy

__all__ += ["momentum_copy"]
