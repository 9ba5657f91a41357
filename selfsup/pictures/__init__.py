"""Pictures of what each pretext task sees: ``DRAWERS[name](images, path, method=None)`` writes a PNG.

``images`` is a uint8 batch (B, C, H, W); ``method`` (optional) is a built
method whose augmentation and task parameters the picture then uses.
"""
from selfsup.pictures import exemplar, jigsaw, relative_location, rotation

DRAWERS = {
    "rotation": rotation.draw,
    "jigsaw": jigsaw.draw,
    "relative_location": relative_location.draw,
    "exemplar": exemplar.draw,
}

__all__ = ["DRAWERS"]
