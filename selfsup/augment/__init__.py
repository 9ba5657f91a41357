"""Batched augmentation on the batch's device: the eval transform, random views, multi-crop.

Pretext transforms (rotations, jigsaw tiles, patch pairs, Lab, masks) live in
their own modules of this package.
"""
from selfsup.augment.convert import to_input
from selfsup.augment.multicrop import MultiCrop
from selfsup.augment.views import ViewAugment

__all__ = ["to_input", "ViewAugment", "MultiCrop"]
