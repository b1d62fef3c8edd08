"""Is this face masked? A small logistic model on the aligned face's lower half.

Features come from a 64x64 chip cut with dlib's alignment (the same for every recognizer):

* HOG of the lower half (nose to chin). A bare face has nostrils, lips and a chin line there;
  a mask has few strong edges, or the long straight ones of its rim and pleats.
* Colour statistics (CIELAB mean and spread) of the lower face, the eye band and their
  differences. A mask is rarely the colour of the skin above it, whatever its own colour.

The weights (``maskface/data/mask_classifier.npz``, a few KB) are fitted by
``tools/fit_mask_classifier.py`` on LFW people of View 2 folds 1-5 wearing our synthetic 2D and
3D masks of every style, with the standardisation folded into them; the held-out accuracy on
folds 6-10 is stored in the file and in benchmarks/RESULTS.md. Inference is numpy and OpenCV
only: a fraction of a millisecond per face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import cv2
import numpy as np

CHIP_SIZE = 64
CHIP_PADDING = 0.25
FEATURE_VERSION = 1
_HOG = cv2.HOGDescriptor((CHIP_SIZE, CHIP_SIZE // 2), (16, 16), (8, 8), (8, 8), 9)
# Regions of the 64x64 chip, (row0, row1, col0, col1): the eye band and the lower face.
_UPPER = (18, 30, 14, 50)
_LOWER = (38, 56, 18, 46)
_CHEEKS = ((32, 44, 8, 18), (32, 44, 46, 56))


def classifier_chip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 64x64 dlib-aligned chip the classifier reads, from 68 landmarks."""
    from maskface.recognizers.templates import align_chip

    return align_chip(image, landmarks, "dlib150", CHIP_SIZE, CHIP_PADDING)


def _region_stats(lab: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = box
    part = lab[r0:r1, c0:c1].reshape(-1, 3)
    return np.concatenate([part.mean(0), part.std(0)])


def mask_features(chips: np.ndarray) -> np.ndarray:
    """Features (N, F) of (N, 64, 64, 3) RGB uint8 chips (see the module docstring)."""
    chips = np.asarray(chips, dtype=np.uint8)
    if chips.ndim == 3:
        chips = chips[None]
    if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"need (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) chips, got {chips.shape}")
    rows = []
    for chip in chips:
        grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
        hog = _HOG.compute(np.ascontiguousarray(grey[CHIP_SIZE // 2:])).ravel()
        # float Lab: L in [0, 100], a and b in about [-127, 127]
        lab = cv2.cvtColor(chip.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        upper, lower = _region_stats(lab, _UPPER), _region_stats(lab, _LOWER)
        cheeks = np.mean([_region_stats(lab, b) for b in _CHEEKS], axis=0)
        colour = np.concatenate([upper, lower, cheeks, lower - upper, cheeks - upper,
                                 np.abs(lower[:3] - upper[:3])]) / 50
        rows.append(np.concatenate([hog, colour]))
    return np.asarray(rows, dtype=np.float32)


@dataclass(frozen=True)
class MaskClassifier:
    """Logistic regression on :func:`mask_features`: P(masked) = sigmoid(f . w + b)."""

    weights: np.ndarray
    bias: float
    threshold: float = 0.5
    info: str = ""

    def probability(self, chips: np.ndarray) -> np.ndarray:
        """P(masked) of each 64x64 chip (N,)."""
        z = mask_features(chips).astype(np.float64) @ self.weights + self.bias
        return 1 / (1 + np.exp(-np.clip(z, -50, 50)))

    def save(self, path) -> None:
        from maskface.atomic import atomic_writer

        with atomic_writer(path) as f:
            np.savez_compressed(f, weights=self.weights.astype(np.float32),
                                bias=np.float32(self.bias),
                                threshold=np.float32(self.threshold),
                                version=np.int32(FEATURE_VERSION), info=np.array(self.info))

    @classmethod
    def load(cls, path) -> MaskClassifier:
        with np.load(path) as z:
            if int(z["version"]) != FEATURE_VERSION:
                raise ValueError(f"{path}: features of version {int(z['version'])}, "
                                 f"this maskface computes version {FEATURE_VERSION}")
            return cls(z["weights"].astype(np.float64), float(z["bias"]),
                       float(z["threshold"]), str(z["info"]))


@cache
def default_classifier() -> MaskClassifier:
    """The classifier shipped in ``maskface/data/mask_classifier.npz``."""
    ref = resources.files("maskface") / "data" / "mask_classifier.npz"
    with resources.as_file(ref) as path:
        return MaskClassifier.load(path)


def mask_probability(image: np.ndarray, landmarks: np.ndarray) -> float:
    """P(the face with these 68 landmarks wears a mask), by the shipped classifier."""
    return float(default_classifier().probability(classifier_chip(image, landmarks)[None])[0])
