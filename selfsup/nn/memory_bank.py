"""A memory bank: one stored, L2-normalised embedding per training image (NPID, PIRL).

Wu, Xiong, Yu & Lin, "Unsupervised Feature Learning via Non-Parametric
Instance Discrimination", CVPR 2018, arXiv:1805.01978: "we maintain a feature
memory bank V for storing v_j" and draw noise samples from it instead of
recomputing every image's feature at each step. The stored vectors move slowly
(Sec. 3.3 and PIRL, arXiv:1912.01991, Sec. 3.2: "an exponential moving average
of representations f(v_I) computed in prior epochs"):
v <- normalize(m * v + (1 - m) * f), m = 0.5 in both papers' code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.nn.distributed import gather_with_grad


class MemoryBank(nn.Module):
    """``num_samples`` unit vectors of size ``dim``, a buffer (on the device, in checkpoints).

    Starts as random unit vectors (uniform on the sphere), as NPID.
    """

    def __init__(self, num_samples: int, dim: int, momentum: float = 0.5):
        super().__init__()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"num_samples must be an int >= 2 (one row per training image), got {num_samples!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = momentum
        self.register_buffer("bank", F.normalize(torch.randn(num_samples, dim), dim=1))  # (n, D)

    @property
    def num_samples(self) -> int:
        return self.bank.shape[0]

    def sample(self, batch_size: int, num_negatives: int) -> torch.Tensor:
        """(B, N) indices drawn uniformly with replacement: NPID's noise distribution P_n = 1/n."""
        return torch.randint(self.num_samples, (batch_size, num_negatives), device=self.bank.device)

    def similarity(self, z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Dot products (B, K) of z (B, D) with the stored rows ``index`` (B, K), in float32; gradients reach z only.

        Scores every stored row once when that is cheaper than gathering B*K rows.
        Either way autograd keeps a copy of the rows, not the buffer, which
        ``update`` changes in place before the backward pass.
        """
        z = z.float()
        # bf16 cosines near 1 step by 0.004: 0.06 in logits at tau=0.07
        with torch.autocast(z.device.type, enabled=False):
            if index.numel() >= self.num_samples:
                return (z @ self.bank.clone().T).gather(1, index)  # (B, n) -> (B, K)
            return torch.einsum("bd,bkd->bk", z, self.bank[index])  # (B, K, D) gathered

    @torch.no_grad()
    def update(self, index: torch.Tensor, z: torch.Tensor) -> None:
        """v_i <- normalize(m * v_i + (1 - m) * z_i) for the rows ``index`` (B,); every rank's rows when distributed."""
        index, z = gather_with_grad(index), gather_with_grad(z.detach().to(self.bank.dtype))
        mixed = self.bank[index].mul_(self.momentum).add_(z, alpha=1.0 - self.momentum)  # (B, D)
        self.bank.index_copy_(0, index, F.normalize(mixed, dim=1))
