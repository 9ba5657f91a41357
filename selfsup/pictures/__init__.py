"""Pictures of what a pretext task sees and produces: ``DRAW[name](images, path, method=None)`` writes a PNG."""
from selfsup.pictures import colorization, inpainting

DRAW = {
    "colorization": colorization.draw,
    "inpainting": inpainting.draw,
}

__all__ = ["DRAW"]
