"""maskface: realistic masks on faces, and face recognition that survives them.

The flat API works on RGB ``uint8`` numpy arrays::

    import maskface
    image = maskface.read_image("photo.jpg")
    faces = maskface.detect_faces(image)                 # boxes, 468-point mesh, pose
    result = maskface.mask_image(image, "kn95", color="black", seed=1)
    maskface.write_image("masked.jpg", result.image)

The names (listed in ``__init__.pyi``) are imported on first use, so the command line and
worker processes that need only part of the package do not load the renderers and SciPy.
"""

import lazy_loader

__version__ = "0.1.0"
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
__all__ = [*__all__, "__version__"]
