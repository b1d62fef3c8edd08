"""Frozen face embeddings of UTKFace-style crops, cached to ``.npy``.

Faces are located with dlib's detector + 68 landmarks. UTKFace crops are already aligned, so
when the detector misses, the landmark model is run on a fixed central box instead (counted
in ``fallback``). A masked copy can be aligned with its unmasked original's ``landmarks``:
the mask does not move the face, so both copies get the very same chip geometry and only the
pixels under the mask differ.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskface.imageio import read_image

# Central box (fractions of width/height) where aligned UTKFace crops hold the face.
_CENTRE_BOX = (0.15, 0.15, 0.85, 0.9)


@dataclass
class Features:
    """Embeddings (N, D) in path order; ``fallback[i]`` marks a centre-box landmark fit."""

    embeddings: np.ndarray
    fallback: np.ndarray
    landmarks: np.ndarray
    seconds: float = 0.0


def face_landmarks68(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """68 landmarks (68, 2) of the largest face, and whether the centre-box fallback was used."""
    import dlib

    from maskface.geometry.dlib_backend import _models

    detector, predictor = _models()
    image = np.ascontiguousarray(image)
    # Upsampling is not needed: UTKFace faces are well above the detector's 80 px minimum.
    rects = detector(image, 0)
    fallback = not rects
    if fallback:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = _CENTRE_BOX
        rect = dlib.rectangle(int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h))
    else:
        rect = max(rects, key=lambda r: r.area())
    shape = predictor(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64), fallback


def embed_images(
    paths: Sequence[str | os.PathLike[str]],
    recognizer=None,
    *,
    landmarks: np.ndarray | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Features:
    """Embed one face per image with ``recognizer`` (default: dlib-resnet).

    ``landmarks`` (N, 68, 2), when given, align the images instead of detecting faces.
    """
    from maskface.recognizers import DEFAULT_DLIB_RECOGNIZER, create_recognizer

    if landmarks is not None and len(landmarks) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(landmarks)} landmark sets")
    rec = recognizer or create_recognizer(DEFAULT_DLIB_RECOGNIZER)
    start = time.perf_counter()
    out: list[np.ndarray] = []
    fallback = np.zeros(len(paths), dtype=bool)
    points = np.zeros((len(paths), 68, 2)) if landmarks is None else np.asarray(landmarks)
    chips: list[np.ndarray] = []
    items = range(len(paths))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="embedding", unit="img")
    for i in items:
        image = read_image(paths[i])
        if landmarks is None:
            points[i], fallback[i] = face_landmarks68(image)
        chips.append(rec.align(image, points[i]))
        if len(chips) == batch_size:
            out.append(rec.embed_chips(np.stack(chips)))
            chips = []
    if chips:
        out.append(rec.embed_chips(np.stack(chips)))
    embeddings = np.concatenate(out) if out else np.zeros((0, rec.dim), np.float32)
    return Features(embeddings, fallback, points, time.perf_counter() - start)


def cached_embeddings(
    cache: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    recognizer=None,
    **kwargs,
) -> Features:
    """:func:`embed_images`, read from / written to ``cache`` (``.npz``) keyed on the paths.

    The cache is used only when it holds exactly these file names in this order.
    """
    cache = Path(cache)
    names = np.array([Path(p).name for p in paths])
    if cache.exists():
        with np.load(cache) as data:
            if data["names"].shape == names.shape and (data["names"] == names).all():
                return Features(data["embeddings"], data["fallback"], data["landmarks"],
                                float(data["seconds"]))
    feats = embed_images(paths, recognizer, **kwargs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, names=names, embeddings=feats.embeddings, fallback=feats.fallback,
             landmarks=feats.landmarks, seconds=feats.seconds)
    os.replace(tmp, cache)
    return feats
