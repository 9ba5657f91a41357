"""Building blocks shared by several methods: heads, gathers, (later) memory banks, queues, EMA, Sinkhorn."""
from selfsup.nn.distributed import gather_with_grad, world_size
from selfsup.nn.heads import mlp

__all__ = ["gather_with_grad", "mlp", "world_size"]
from selfsup.nn.sinkhorn import sinkhorn_knopp

__all__ += ["sinkhorn_knopp"]
from selfsup.nn.batchnorm import running_stats_frozen

__all__ += ["running_stats_frozen"]
