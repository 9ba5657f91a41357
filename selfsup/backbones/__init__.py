"""Backbones by name: ``build_backbone("resnet50_v2", width=2)``.

Every backbone is a ``Backbone`` (see base.py): ``features(x, names)`` gives named
layers ending in ``pre_logits``, ``forward`` gives the pre-logits. The registry
is filled here, explicitly, so the list of names is this file.
"""
from __future__ import annotations

from typing import Any

from selfsup.backbones.alexnet import AlexNet, alexnet
from selfsup.backbones.base import Backbone
from selfsup.backbones.resnet import ResNet, resnet_variant
from selfsup.backbones.revnet import RevNet, revnet50
from selfsup.backbones.vgg import VGG19, vgg19_bn
from selfsup.registry import Registry

BACKBONES = Registry("backbone")

for _depth, _version, _last_relu in [
    (18, "v1", True), (34, "v1", True), (50, "v1", True), (101, "v1", True), (50, "v1", False),
    (18, "v2", True), (34, "v2", True), (50, "v2", True), (101, "v2", True), (50, "v2", False),
]:
    _fn = resnet_variant(_depth, _version, _last_relu)
    BACKBONES.register(_fn.__name__, _fn)
BACKBONES.register("revnet50", revnet50)
BACKBONES.register("vgg19_bn", vgg19_bn)
BACKBONES.register("alexnet", alexnet)


def build_backbone(name: str, /, **kwargs: Any) -> Backbone:
    """Build a registered backbone; unknown names or options raise ConfigError naming them."""
    return BACKBONES.build(name, **kwargs)


def backbone_names() -> list[str]:
    return BACKBONES.names()


__all__ = ["AlexNet", "BACKBONES", "Backbone", "ResNet", "RevNet", "VGG19", "backbone_names", "build_backbone"]
