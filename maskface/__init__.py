"""maskface: realistic masks on faces, and face recognition that survives them.

The flat API works on RGB ``uint8`` numpy arrays::

    import maskface
    image = maskface.read_image("photo.jpg")
    faces = maskface.detect_faces(image)                 # boxes, 468-point mesh, pose
    result = maskface.mask_image(image, "kn95", color="black", seed=1)
    maskface.write_image("masked.jpg", result.image)
"""

from __future__ import annotations

__version__ = "0.1.0"

from maskface.errors import ImageReadError, MaskfaceError
from maskface.geometry.analysers import create_analyser, detect_faces, list_analysers
from maskface.geometry.face import Face, Pose
from maskface.imageio import read_image, write_image
from maskface.render.registry import create_renderer, list_renderers
from maskface.styles import create_style, list_styles
from maskface.styles.base import WEAR_STYLES
from maskface.synthesis import MaskingResult, mask_image
from maskface.transforms import AddMask

__all__ = [
    "WEAR_STYLES",
    "AddMask",
    "Face",
    "ImageReadError",
    "MaskfaceError",
    "MaskingResult",
    "Pose",
    "__version__",
    "create_analyser",
    "create_renderer",
    "create_style",
    "detect_faces",
    "list_analysers",
    "list_renderers",
    "list_styles",
    "mask_image",
    "read_image",
    "write_image",
]
