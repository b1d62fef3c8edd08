"""Identification galleries: enrol people from photos, name the faces in a photo.

    from maskface.gallery import Gallery
    g = Gallery.create("staff", recognizer="dlib-resnet")
    g.enrol("Ada", ["ada1.jpg", "ada2.jpg"], mask_aware=True)
    for face in g.search(maskface.read_image("door.jpg")):
        print(face.identity, face.score, face.masked)

The names (listed in ``__init__.pyi``) are imported on first use.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
