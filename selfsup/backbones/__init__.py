"""Backbones by name: ``build_backbone("resnet50_v2", width=2)``.

Every backbone is a ``Backbone`` (see base.py): ``features(x, names)`` gives named
layers ending in ``pre_logits``, ``forward`` gives the pre-logits. The registry
is filled here, explicitly, so the list of names is this file.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from selfsup.backbones.alexnet import AlexNet
from selfsup.backbones.base import Backbone
from selfsup.backbones.resnet import ResNet
from selfsup.backbones.revnet import RevNet
from selfsup.backbones.vgg import VGG19
from selfsup.registry import Registry

BACKBONES = Registry("backbone")

# ResNet presets: depth, version and last ReLU fixed by the name; the registry reads the rest from ResNet's signature
for _depth, _version, _last_relu in [
    (18, "v1", True), (34, "v1", True), (50, "v1", True), (101, "v1", True), (50, "v1", False),
    (18, "v2", True), (34, "v2", True), (50, "v2", True), (101, "v2", True), (50, "v2", False),
]:
    BACKBONES.register(f"resnet{_depth}_{_version}" + ("" if _last_relu else "_nolastrelu"),
                       partial(ResNet, _depth, _version, last_relu=_last_relu))
BACKBONES.register("revnet50", RevNet)  # RevNet-50-like
BACKBONES.register("vgg19_bn", VGG19)  # BN after every conv and fc
BACKBONES.register("alexnet", AlexNet)  # the BN variant by default


def build_backbone(name: str, /, **kwargs: Any) -> Backbone:
    """Build a registered backbone; unknown names or options raise ConfigError naming them."""
    return BACKBONES.build(name, **kwargs)


def backbone_names() -> list[str]:
    return BACKBONES.names()


__all__ = ["AlexNet", "BACKBONES", "Backbone", "ResNet", "RevNet", "VGG19", "backbone_names", "build_backbone"]
