"""dlib's own face-recognition ResNet through ``dlib.face_recognition_model_v1`` (reference)."""

from __future__ import annotations

from functools import cache

import numpy as np

from maskface.recognizers.base import Recognizer


@cache
def _model():
    import dlib

    from maskface.geometry.dlib_backend import dlib_model_path

    return dlib.face_recognition_model_v1(
        dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
    )


class DlibRecognizer(Recognizer):
    """dlib's C++ network, one face at a time: the reference the PyTorch port is held to."""

    name = "dlib"
    chip_size = 150
    dim = 128

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """dlib's raw descriptors for (N, 150, 150, 3) uint8 RGB chips."""
        if not len(chips):
            return np.zeros((0, self.dim), np.float32)
        found = _model().compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.array([np.array(d) for d in found], dtype=np.float32)
