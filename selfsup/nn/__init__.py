"""Building blocks shared by several methods: heads, gathers, memory banks, queues, shuffled BN, EMA copies, Sinkhorn,
and the label-free monitors of an embedding (std, RankMe)."""
from selfsup.nn.batchnorm import running_stats_frozen
from selfsup.nn.distributed import gather, gather_with_grad, world_size
from selfsup.nn.ema import momentum_copy
from selfsup.nn.heads import linear_or_mlp, mlp
from selfsup.nn.memory_bank import MemoryBank
from selfsup.nn.monitors import embedding_std, rankme
from selfsup.nn.queue import FeatureQueue
from selfsup.nn.shuffle_bn import grouped_forward, shuffled_forward
from selfsup.nn.sinkhorn import sinkhorn_knopp

__all__ = [
    "FeatureQueue",
    "MemoryBank",
    "embedding_std",
    "gather",
    "gather_with_grad",
    "grouped_forward",
    "linear_or_mlp",
    "mlp",
    "momentum_copy",
    "rankme",
    "running_stats_frozen",
    "shuffled_forward",
    "sinkhorn_knopp",
    "world_size",
]
