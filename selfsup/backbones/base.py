"""What every backbone offers, whatever its architecture."""
from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Base of every backbone.

    Subclasses set ``feature_names`` (ordered from input to output, the last one
    always ``"pre_logits"``) and ``out_dim`` (the size of ``pre_logits``), and
    implement ``features``. ``forward`` returns the pre-logits, so a backbone
    drops into any method as a plain encoder.
    """

    feature_names: tuple[str, ...] = ()
    out_dim: int = 0

    def features(self, x: torch.Tensor, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """Named intermediate representations of ``x`` (B, C, H, W).

        Returns ``{name: tensor}`` for ``names`` (all of ``feature_names`` when
        None), in network order; spatial layers are (B, C', H', W'), ``pre_logits``
        is (B, out_dim). Implementations may stop early once the last requested
        layer is computed.
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, ("pre_logits",))["pre_logits"]

    @torch.no_grad()
    def feature_shapes(self, size: int) -> dict[str, tuple[int, ...]]:
        """Shape of each named feature (without batch) for a ``size`` x ``size`` input."""
        was_training = self.training
        self.eval()
        p = next(self.parameters())
        x = torch.zeros(1, self.in_channels, size, size, device=p.device, dtype=p.dtype)
        out = {k: tuple(v.shape[1:]) for k, v in self.features(x).items()}
        self.train(was_training)
        return out

    in_channels: int = 3
