"""The recognizer interface: faces in, L2-normalised float32 embeddings (N, D) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from maskface.errors import MaskfaceError
from maskface.geometry.face import Face


class NoFaceError(MaskfaceError):
    """An image given to a recognizer without a face record has no detectable face."""


class ModelLoadError(MaskfaceError, ValueError):
    """A model file cannot be used: missing, not a model, or its input does not fit."""


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, np.float32(1e-12))


class Recognizer(ABC):
    """Maps aligned face chips (or images plus faces) to unit-length embeddings.

    Subclasses implement :meth:`descriptors` on a batch of aligned ``chip_size`` x
    ``chip_size`` RGB uint8 chips; everything else (alignment, flip averaging, normalising)
    is shared. With ``flip=True`` the descriptors of each chip and its mirror image are
    averaged before normalising. ``alignment`` names how chips are cut (see
    :mod:`maskface.recognizers.templates`): ``dlib150`` (dlib's chip at ``chip_size`` with
    ``padding``), ``arcface112`` or ``facenet160``.
    """

    name: str = ""
    chip_size: int = 150
    dim: int = 0
    padding: float = 0.25  # context around the face in the chip, as dlib's default
    alignment: str = "dlib150"
    # What else tells this model from others of the same name (e.g. a digest of its weights
    # file); part of the embedding cache key.
    cache_id: str = ""

    def __init__(self, flip: bool = False, batch_size: int = 64) -> None:
        self.flip = flip
        self.batch_size = batch_size

    @abstractmethod
    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """The model's raw features (N, dim) for (N, chip_size, chip_size, 3) uint8 chips."""

    def embed_chips(self, chips: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings (N, dim) of aligned RGB uint8 chips."""
        chips = np.asarray(chips, dtype=np.uint8)
        if chips.ndim != 4 or chips.shape[1:] != (self.chip_size, self.chip_size, 3):
            raise ValueError(
                f"{self.name} needs (N, {self.chip_size}, {self.chip_size}, 3) chips, "
                f"got {chips.shape}"
            )
        feats = self.descriptors(chips)
        if self.flip:
            feats = (feats + self.descriptors(np.ascontiguousarray(chips[:, :, ::-1]))) / 2
        return l2_normalize(feats)

    def align(self, image: np.ndarray, face: Face | np.ndarray) -> np.ndarray:
        """The aligned chip of one face (a :class:`Face` or its 5/68 landmarks (K, 2)).

        Five points are dlib's 5-point landmarks for ``dlib150`` and the ArcFace points
        (eyes, nose tip, mouth corners) otherwise.
        """
        from maskface.recognizers.templates import align_chip

        return align_chip(image, face, self.alignment, self.chip_size, self.padding)

    def embed(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | np.ndarray] | None = None
    ) -> np.ndarray:
        """Embeddings (N, dim) of one face per RGB image.

        ``faces[i]`` (a :class:`Face` or 5/68 landmarks) locates the face in ``images[i]``;
        without ``faces`` the largest face dlib's detector finds is used.
        """
        if faces is None:
            faces = [_largest_face(image) for image in images]
        if len(faces) != len(images):
            raise ValueError(f"{len(images)} images but {len(faces)} faces")
        chips = [self.align(image, face) for image, face in zip(images, faces, strict=True)]
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_chips(np.stack(chips))


def _largest_face(image: np.ndarray) -> Face:
    from maskface.geometry.analysers import detect_faces

    faces = detect_faces(image, backend="dlib")
    if not faces:
        raise NoFaceError("no face found; pass faces= to locate it")
    return faces[0]
