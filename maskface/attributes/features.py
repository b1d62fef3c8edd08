"""Face chips of UTKFace-style crops and their frozen embeddings, as every command cuts them.

Faces are found and chips cut by :mod:`maskface.geometry.locate` (BlazeFace -> dlib's 68
points by default, the centre box when no face is found, counted in ``fallback``), and
embedded by :func:`maskface.evaluation.embeddings.embed_paths` with its SQLite cache: the same
recognizer gets the same chip, and the same embedding, from the same photo in ``maskface
eval``, the attribute study and training.

A masked copy is cut where its unmasked original's face is (``align_with``): the mask does
not move the face, so both copies get the very same chip geometry and only the pixels under
the mask differ. The fine-tuned networks train on the very chips the embedding baseline
embeds (:func:`cut_chips`), so both see the same faces.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskface.atomic import atomic_writer
from maskface.errors import MaskfaceError

PathLike = str | os.PathLike[str]
_CHIP_CACHE_VERSION = 2  # 1: file names only, dlib HOG and the study's own centre box


class FeatureError(MaskfaceError):
    """Images of the attribute study could not be read or aligned."""


@dataclass
class Features:
    """Embeddings (N, D) in path order; ``fallback[i]`` marks a centre-box landmark fit."""

    embeddings: np.ndarray
    fallback: np.ndarray
    seconds: float = 0.0
    cached: int = 0


@dataclass
class Chips:
    """Aligned uint8 RGB chips (N, 150, 150, 3) in path order (dlib-resnet's chips)."""

    chips: np.ndarray
    fallback: np.ndarray
    seconds: float = 0.0


def dlib_chip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 150x150 dlib chip of one face, cut exactly as the dlib-resnet recognizer cuts it."""
    from maskface.geometry.locate import cut_chip
    from maskface.recognizers.dlib_resnet import DlibResNetRecognizer as Rec

    # The recognizer's class attributes, not a copy of their values: embeddings and
    # fine-tuning chips can never drift apart.
    return cut_chip(image, landmarks, Rec.alignment, Rec.chip_size, Rec.padding)


def _check(paths: Sequence[PathLike], align_with: Sequence[PathLike | None] | None) -> None:
    if align_with is not None and len(align_with) != len(paths):
        raise FeatureError(f"{len(paths)} images but {len(align_with)} to align them with")


def _raise_failures(failures: Sequence[tuple[str, str]]) -> None:
    if failures:
        first = "; ".join(f"{p}: {why}" for p, why in failures[:3])
        raise FeatureError(f"{len(failures)} image(s) of the study cannot be used ({first}).")


def embed_images(
    paths: Sequence[PathLike],
    recognizer=None,
    *,
    align_with: Sequence[PathLike | None] | None = None,
    cache=None,
    detector: str = "blazeface",
    workers: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Features:
    """Embed one face per image with ``recognizer`` (default: dlib-resnet).

    ``align_with`` (one image or ``None`` per path, e.g. the unmasked originals of masked
    copies) places each chip where that image's face is. ``cache``: an
    :class:`~maskface.evaluation.embeddings.EmbeddingCache` (the one ``maskface eval`` uses).
    Every image must be readable (:class:`FeatureError` names those that are not).
    """
    from maskface.evaluation.embeddings import embed_paths
    from maskface.recognizers import DEFAULT_DLIB_RECOGNIZER, create_recognizer

    _check(paths, align_with)
    rec = recognizer or create_recognizer(DEFAULT_DLIB_RECOGNIZER)
    start = time.perf_counter()
    result = embed_paths(paths, rec, cache=cache, fallback="center", detector=detector,
                         workers=workers, batch_size=batch_size, progress=progress,
                         align_with=align_with)
    _raise_failures(result.failures)
    fallback = np.array([m == "center" for m in result.methods], dtype=bool)
    return Features(result.embeddings, fallback, time.perf_counter() - start, result.cached)


def cut_chips(
    paths: Sequence[PathLike],
    *,
    align_with: Sequence[PathLike | None] | None = None,
    detector: str = "blazeface",
    workers: int | None = None,
    progress: bool = False,
) -> Chips:
    """The dlib-resnet chips of one face per image (what :func:`embed_images` embeds).

    ``align_with`` as for :func:`embed_images`. Cut by the detection workers ``maskface
    eval`` uses, so the chips are eval's to the byte."""
    from maskface.evaluation.embeddings import _detections, auto_workers
    from maskface.recognizers.dlib_resnet import DlibResNetRecognizer as Rec

    _check(paths, align_with)
    start = time.perf_counter()
    tasks = [(str(p), detector, 1, Rec.alignment, Rec.chip_size, Rec.padding,
              *(() if align_with is None or align_with[i] is None else (str(align_with[i]),)))
             for i, p in enumerate(paths)]
    chips = np.zeros((len(paths), Rec.chip_size, Rec.chip_size, 3), dtype=np.uint8)
    fallback = np.zeros(len(paths), dtype=bool)
    bar = None
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="chips", unit="img")
    failures = []
    for i, (chip, how) in enumerate(_detections(tasks, workers or auto_workers(len(tasks)))):
        if bar is not None:
            bar.update()
        if chip is None:
            failures.append((str(paths[i]), how))
            continue
        chips[i], fallback[i] = chip, how == "center"
    if bar is not None:
        bar.close()
    _raise_failures(failures)
    return Chips(chips, fallback, time.perf_counter() - start)


def _chip_key(paths: Sequence[PathLike], align_with: Sequence[PathLike | None] | None,
              detector: str) -> str:
    """What the chips of ``paths`` depend on: the files' contents and how they are cut."""
    from maskface.evaluation.embeddings import file_digest
    from maskface.recognizers.dlib_resnet import DlibResNetRecognizer as Rec

    if detector == "blazeface":  # refitting the box map moves every landmark
        from maskface.geometry.hog_box import weights_digest

        detector = f"blazeface-{weights_digest()}"
    h = hashlib.blake2b(digest_size=16)
    h.update(f"v{_CHIP_CACHE_VERSION}|{detector}|{Rec.alignment}|{Rec.chip_size}|"
             f"{Rec.padding}".encode())
    for i, p in enumerate(paths):
        h.update(file_digest(p).encode())
        if align_with is not None and align_with[i] is not None:
            h.update(b"@" + file_digest(align_with[i]).encode())
    return h.hexdigest()


def cached_chips(
    cache: PathLike,
    paths: Sequence[PathLike],
    *,
    align_with: Sequence[PathLike | None] | None = None,
    detector: str = "blazeface",
    progress: bool = False,
) -> Chips:
    """:func:`cut_chips`, read from / written to ``cache`` (``.npz``).

    The file is used only when it holds the chips of these very files (by content), cut the
    same way; otherwise they are cut again and the file replaced. Uncompressed on purpose:
    chips are ~67 kB each and JPEG noise compresses poorly, while reading 8,000 of them back
    takes about a second.
    """
    cache = Path(cache)
    key = _chip_key(paths, align_with, detector)
    if cache.exists():
        with np.load(cache) as data:
            if "key" in data.files and str(data["key"]) == key:
                return Chips(data["chips"], data["fallback"], float(data["seconds"]))
    result = cut_chips(paths, align_with=align_with, detector=detector, progress=progress)
    with atomic_writer(cache) as fh:
        np.savez(fh, key=np.array(key), chips=result.chips, fallback=result.fallback,
                 seconds=result.seconds)
    return result
