"""Aligned face chips of UTKFace-style crops and their frozen embeddings, cached to ``.npz``.

Faces are located with dlib's detector + 68 landmarks. UTKFace crops are already aligned, so
when the detector misses, the landmark model is run on a fixed central box instead (counted
in ``fallback``). A masked copy can be aligned with its unmasked original's ``landmarks``:
the mask does not move the face, so both copies get the very same chip geometry and only the
pixels under the mask differ. The fine-tuned networks train on the very chips the embedding
baseline embeds (:func:`cut_chips`), so both see the same faces.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskface.atomic import atomic_writer
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


def dlib_chip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 150x150 dlib chip of one face, cut exactly as the dlib-resnet recognizer cuts it."""
    from maskface.recognizers.dlib_resnet import DlibResNetRecognizer as Rec
    from maskface.recognizers.templates import align_chip

    # The recognizer's class attributes, not a copy of their values: embeddings and
    # fine-tuning chips can never drift apart.
    return align_chip(image, landmarks, Rec.alignment, Rec.chip_size, Rec.padding)


def _aligned_chips(
    paths: Sequence[str | os.PathLike[str]],
    align: Callable[[np.ndarray, np.ndarray], np.ndarray],
    landmarks: np.ndarray | None,
    progress: bool,
    desc: str,
) -> tuple[Iterator[np.ndarray], np.ndarray, np.ndarray]:
    """A lazy stream of chips in path order, plus the landmark and fallback arrays it fills.

    ``landmarks`` (N, 68, 2), when given, align the images instead of detecting faces.
    """
    if landmarks is not None and len(landmarks) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(landmarks)} landmark sets")
    fallback = np.zeros(len(paths), dtype=bool)
    points = np.zeros((len(paths), 68, 2)) if landmarks is None else np.asarray(landmarks)

    def stream() -> Iterator[np.ndarray]:
        items: Iterable[int] = range(len(paths))
        if progress:
            from tqdm import tqdm

            items = tqdm(items, desc=desc, unit="img")
        for i in items:
            image = read_image(paths[i])
            if landmarks is None:
                points[i], fallback[i] = face_landmarks68(image)
            yield align(image, points[i])

    return stream(), points, fallback


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

    rec = recognizer or create_recognizer(DEFAULT_DLIB_RECOGNIZER)
    start = time.perf_counter()
    stream, points, fallback = _aligned_chips(paths, rec.align, landmarks, progress,
                                              "embedding")
    out: list[np.ndarray] = []
    chips: list[np.ndarray] = []
    for chip in stream:
        chips.append(chip)
        if len(chips) == batch_size:
            out.append(rec.embed_chips(np.stack(chips)))
            chips = []
    if chips:
        out.append(rec.embed_chips(np.stack(chips)))
    embeddings = np.concatenate(out) if out else np.zeros((0, rec.dim), np.float32)
    return Features(embeddings, fallback, points, time.perf_counter() - start)


@dataclass
class Chips:
    """Aligned uint8 RGB chips (N, 150, 150, 3) in path order, with the landmarks that cut them."""

    chips: np.ndarray
    fallback: np.ndarray
    landmarks: np.ndarray
    seconds: float = 0.0


def cut_chips(
    paths: Sequence[str | os.PathLike[str]],
    *,
    landmarks: np.ndarray | None = None,
    progress: bool = False,
) -> Chips:
    """The dlib-resnet chips of one face per image (what :func:`embed_images` embeds).

    ``landmarks`` (N, 68, 2), when given, align the images instead of detecting faces.
    """
    from maskface.recognizers.dlib_resnet import CHIP_SIZE

    start = time.perf_counter()
    stream, points, fallback = _aligned_chips(paths, dlib_chip, landmarks, progress, "chips")
    chips = np.zeros((len(paths), CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    for i, chip in enumerate(stream):
        chips[i] = chip
    return Chips(chips, fallback, points, time.perf_counter() - start)


def _names(paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
    return np.array([Path(p).name for p in paths])


def _read_cache(cache: Path, names: np.ndarray, *keys: str) -> list[np.ndarray] | None:
    """The ``keys`` arrays of ``cache`` when it holds exactly ``names`` in this order."""
    if not cache.exists():
        return None
    with np.load(cache) as data:
        if data["names"].shape != names.shape or not bool((data["names"] == names).all()):
            return None
        return [data[k] for k in keys]


def _cached(cache: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]],
            kind: type, field: str, make: Callable[[], Features | Chips]):
    """``kind`` read from ``cache`` when it matches ``paths``, else ``make()`` written to it."""
    cache = Path(cache)
    names = _names(paths)
    stored = _read_cache(cache, names, field, "fallback", "landmarks", "seconds")
    if stored is not None:
        *arrays, seconds = stored
        return kind(*arrays, float(seconds))
    result = make()
    with atomic_writer(cache) as fh:
        np.savez(fh, names=names, **{field: getattr(result, field)}, fallback=result.fallback,
                 landmarks=result.landmarks, seconds=result.seconds)
    return result


def cached_landmarks(
    cache: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]]
) -> np.ndarray | None:
    """The landmarks stored in an embedding or chip cache for exactly these paths, else None."""
    stored = _read_cache(Path(cache), _names(paths), "landmarks")
    return None if stored is None else stored[0]


def cached_chips(
    cache: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    **kwargs,
) -> Chips:
    """:func:`cut_chips`, read from / written to ``cache`` (``.npz``) keyed on the paths.

    Uncompressed on purpose: chips are ~67 kB each and JPEG noise compresses poorly, while
    reading 8,000 of them back takes about a second.
    """
    return _cached(cache, paths, Chips, "chips", lambda: cut_chips(paths, **kwargs))


def cached_embeddings(
    cache: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    recognizer=None,
    **kwargs,
) -> Features:
    """:func:`embed_images`, read from / written to ``cache`` (``.npz``) keyed on the paths.

    The cache is used only when it holds exactly these file names in this order.
    """
    return _cached(cache, paths, Features, "embeddings",
                   lambda: embed_images(paths, recognizer, **kwargs))
