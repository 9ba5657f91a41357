"""DINO: self-distillation with no labels; a student matches a momentum teacher's centred, sharpened output.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski & Joulin, "Emerging
Properties in Self-Supervised Vision Transformers", ICCV 2021,
arXiv:2104.14294. "we train a student network g_theta_s to match the output of
a given teacher network g_theta_t"; the teacher is "an exponential moving
average (EMA) on the student weights"; collapse is avoided by "a centering and
sharpening of the momentum teacher outputs" (Sec. 3.1). Multi-crop: "all crops
are passed through the student while only the global views are passed through
the teacher".

Pseudo-code of one step (the paper's Algorithm 1, with multi-crop):
    t = teacher(global crops)                     # no gradient
    s = student(global and local crops)
    loss = mean over pairs (i global, v != i) of H(softmax((t_i - C) / tau_t), softmax(s_v / tau_s))
    C = m C + (1 - m) mean(t)                     # centre
    teacher = l teacher + (1 - l) student         # by the loop, after the optimizer step
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import MultiCrop, ViewAugment
from selfsup.augment.multicrop import small_crop_augment
from selfsup.backbones.base import Backbone
from selfsup.checks import count, positive, unit_interval
from selfsup.data.batch import Batch
from selfsup.losses import dino_loss, update_center
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import running_stats_frozen

_N_GLOBAL = 2  # "two global views at resolution 224^2"


class DINOHead(nn.Module):
    """3-layer MLP, L2-normalized bottleneck, weight-normalized linear layer to K dimensions.

    "The projection head consists of a 3-layer multi-layer perceptron (MLP) with
    hidden dimension 2048 followed by l2 normalization and a weight normalized
    fully connected layer with K dimensions" (Sec. 3.1). The last layer's norm g
    is fixed to 1 (the released code's default), so its weight is the row-normalized ``last``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256, bn: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(2):
            layers += [nn.Linear(dim, hidden_dim), *([nn.BatchNorm1d(hidden_dim)] if bn else []), nn.GELU()]
            dim = hidden_dim
        layers.append(nn.Linear(dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last = nn.Parameter(torch.empty(out_dim, bottleneck_dim))  # (K, bottleneck) direction v; g = 1
        nn.init.kaiming_uniform_(self.last, a=5**0.5)  # nn.Linear's initialisation

    def forward(self, x: torch.Tensor, freeze_last: bool = False) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)  # (N, bottleneck) on the unit sphere
        w = F.normalize(self.last, dim=1)  # (K, bottleneck) weight norm with g = 1
        return F.linear(x, w.detach() if freeze_last else w)  # (N, K)


class DINO(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        head_bn: bool = False,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.07,
        teacher_temperature_start: float = 0.04,
        teacher_temperature_warmup_steps: int = 0,
        center_momentum: float = 0.9,
        momentum: float = 0.996,
        n_small_crops: int = 8,
        small_size: int | None = None,
        small_crop_scale: tuple[float, float] = (0.05, 0.4),
        freeze_last_layer_steps: int = 0,
    ):
        """Defaults are the paper's; the global views come from ``augment`` (paper crop scale (0.4, 1)).

        Args:
            out_dim: K, "65536" on ImageNet; scale it to the data (a few thousand for
                10-class data is plenty, and cheaper).
            head_bn: BatchNorm in the head's hidden layers (the released code's option,
                off for ViTs; it helps ResNets in short runs).
            teacher_temperature, teacher_temperature_start, teacher_temperature_warmup_steps:
                "a linear warm-up for tau_t from 0.04 to 0.07 during the first 30 epochs".
            center_momentum: m of the centre's moving average ("m = 0.9" in the code).
            momentum: base EMA momentum of the teacher, "following a cosine schedule
                from 0.996 to 1 during training" (the loop runs the schedule).
            small_size: side of the local crops; None gives half the global size (the
                paper's 96 px beside 224 px is 0.43).
            small_crop_scale: area fraction of local crops (the code's (0.05, 0.4)).
            freeze_last_layer_steps: the head's last layer gets no gradient for these first
                steps: "freezing the last layer during the first epoch of training helps".
        """
        super().__init__(backbone)
        positive("student_temperature", student_temperature)
        positive("teacher_temperature", teacher_temperature)
        positive("teacher_temperature_start", teacher_temperature_start)
        unit_interval("center_momentum", center_momentum)
        unit_interval("momentum", momentum)
        count("teacher_temperature_warmup_steps", teacher_temperature_warmup_steps)
        count("freeze_last_layer_steps", freeze_last_layer_steps)
        small = small_crop_augment(augment, small_size or max(1, augment.size // 2), tuple(small_crop_scale))
        self.multicrop = MultiCrop(augment, small, n_large=_N_GLOBAL, n_small=n_small_crops)
        self.student_temperature, self.center_momentum, self.momentum = student_temperature, center_momentum, momentum
        self.teacher_temperature, self.teacher_temperature_start = teacher_temperature, teacher_temperature_start
        self.teacher_temperature_warmup_steps = teacher_temperature_warmup_steps
        self.freeze_last_layer_steps = freeze_last_layer_steps
        self.head = DINOHead(backbone.out_dim, out_dim, hidden_dim, bottleneck_dim, head_bn)
        # "the teacher and the student start from the same initialisation"; the teacher gets no gradient.
        self.teacher_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("center", torch.zeros(out_dim))  # (K,) running mean of the teacher's logits

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.teacher_backbone), (self.head, self.teacher_head)]

    def ema_momentum(self) -> float:
        return self.momentum

    def teacher_temperature_at(self, step: int) -> float:
        """tau_t: linear from the start value to the final one over the warm-up steps, then constant."""
        if step >= self.teacher_temperature_warmup_steps:
            return self.teacher_temperature
        t = step / self.teacher_temperature_warmup_steps
        return self.teacher_temperature_start + t * (self.teacher_temperature - self.teacher_temperature_start)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        b = len(batch)
        crops = self.multicrop(batch.images)  # 2 global (B, 3, S, S) then n_small local (B, 3, s, s)
        global_crops = torch.cat(crops[:_N_GLOBAL])  # (2B, 3, S, S)
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher_backbone(global_crops)).float().split(b)  # 2 x (B, K)
        h = [self.backbone(global_crops)]  # one backbone pass per resolution
        if len(crops) > _N_GLOBAL:  # evaluation's BN statistics stay those of full-size crops
            with running_stats_frozen(self.backbone):
                h.append(self.backbone(torch.cat(crops[_N_GLOBAL:])))
        freeze = step < self.freeze_last_layer_steps
        student = self.head(torch.cat(h), freeze_last=freeze).float().split(b)  # V x (B, K)
        tau_t = self.teacher_temperature_at(step)
        loss = dino_loss(student, teacher, self.center, self.student_temperature, tau_t)
        with torch.no_grad():  # how sharp the targets are: collapse to uniform shows as entropy -> log K
            p = F.softmax((torch.cat(teacher) - self.center) / tau_t, dim=1)
            entropy = -(p * p.clamp_min(1e-12).log()).sum(dim=1).mean()
        update_center(self.center, teacher, self.center_momentum)
        return StepOutput(loss, {"teacher_temp": tau_t, "teacher_entropy": entropy.item()}, embedding=h[0][:b].detach())
