"""What every backbone offers, whatever its architecture."""
from __future__ import annotations

import torch
from torch import nn

from selfsup.registry import ConfigError


class Backbone(nn.Module):
    """Base of every backbone.

    Subclasses set ``feature_names`` (ordered from input to output, the last one
    always ``"pre_logits"``) and ``out_dim`` (the size of ``pre_logits``), and
    implement ``features``. ``forward`` returns the pre-logits, so a backbone
    drops into any method as a plain encoder.

    A subclass that keeps its layers in ``self.stages`` (an ``nn.ModuleDict``
    whose keys are ``feature_names``, each stage fed the previous one's output)
    inherits ``features``, which stops after the deepest requested stage.
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
        stages = getattr(self, "stages", None)
        if not isinstance(stages, nn.ModuleDict):
            raise NotImplementedError(f"{type(self).__name__} has no `stages` ModuleDict; override features()")
        wanted = self.check_feature_names(names)
        out: dict[str, torch.Tensor] = {}
        for name, stage in stages.items():
            x = stage(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out

    def check_feature_names(self, names: tuple[str, ...] | None) -> tuple[str, ...]:
        """``names`` in network order (all when None); ConfigError naming an unknown one."""
        if names is None:
            return tuple(self.feature_names)
        if isinstance(names, str) or len(names) == 0:
            raise ConfigError(f"feature names must be a non-empty tuple of names, got {names!r}")
        unknown = [n for n in names if n not in self.feature_names]
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} has no feature {unknown[0]!r}; choose from: {', '.join(self.feature_names)}"
            )
        return tuple(n for n in self.feature_names if n in names)

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
