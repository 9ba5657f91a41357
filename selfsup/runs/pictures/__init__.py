"""Pictures of what each pretext task sees and produces: ``DRAWERS[name](images, path, method=None)`` writes a PNG.

``images`` is a uint8 batch (B, C, H, W); ``method`` (optional) is a built
method whose augmentation and task parameters the picture then uses (and, for
colorization and inpainting, whose predictions it shows).
"""
from selfsup.runs.pictures import colorization, exemplar, inpainting, jigsaw, relative_location, rotation

DRAWERS = {
    "rotation": rotation.draw,
    "jigsaw": jigsaw.draw,
    "relative_location": relative_location.draw,
    "exemplar": exemplar.draw,
    "colorization": colorization.draw,
    "inpainting": inpainting.draw,
}

__all__ = ["DRAWERS"]
