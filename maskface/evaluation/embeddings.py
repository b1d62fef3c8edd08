"""Embeddings of image files, with an on-disk cache and a policy for faces not found.

:func:`embed_paths` detects and aligns in worker processes (one per core, at a lower
priority) while the main process runs the recognizer on the chips already cut, so both stages
keep the cores busy and the recognizer never waits for a core. Only a few chunks of images
are in flight at a time, so memory does not grow with the dataset.

Failure-to-enrol policy. When the detector finds no face, dlib's 68-point predictor is run on
a centre box (the face's usual place in pre-cropped datasets such as LFW, whose 250x250 images
are centred on the face) and the image is aligned from those points. ``fallback="center"``
uses that embedding and lists the image in ``fallback_used``; ``fallback="exclude"`` marks the
image not ``ok`` and lists it in ``failures``, so the pairs using it can be dropped and
reported. Images that cannot be read are always failures. Nothing is dropped silently.

Cache. :class:`EmbeddingCache` is a SQLite file mapping (pipeline key, blake2b digest of the
file bytes) to the embedding and how the face was found. The key names the recognizer (with a
digest of its weights for model-file recognizers), its alignment, its flip setting and the
detector, so masked and unmasked configurations share the unmasked images' embeddings,
renamed or copied files hit the cache, and edited files miss it. The cache records whether
the face was detected or centre-boxed and the policy is applied when reading, so switching
policy needs no recomputation.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Faces are located and chips cut in maskface.geometry.locate, for every command; the names
# stay importable from here (older scripts and tools import them from this module).
from maskface.geometry.locate import (  # noqa: F401
    CENTER_BOX,
    DETECTORS,
    _blazeface,
    _central,
    _dlib_models,
    _landmarks,
    center_landmarks,
    face_chip,
    landmarks_or_center,
    locate,
)
from maskface.recognizers.base import Recognizer

FALLBACKS = ("center", "exclude")
_PIPELINE_VERSION = 1
_CHUNK = 8  # images a detection worker takes at a time
# Images per detection process below which workers are not worth starting: a spawned
# worker takes a second or two to import its models, what detecting ~50 images costs.
_IMAGES_PER_WORKER = 48


def file_digest(path: str | os.PathLike[str]) -> str:
    """blake2b (128-bit) hex digest of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pipeline_key(recognizer: Recognizer, detector: str, upsample: int) -> str:
    """The cache key of everything that shapes an embedding besides the image."""
    flip = getattr(recognizer, "flip", False)
    alignment = getattr(recognizer, "alignment", "dlib150")
    # dlib's chips keep the key they always had, so existing caches stay valid.
    pad = f"-pad{recognizer.padding}" if alignment.startswith("dlib150") else ""
    chip = (f"chip{recognizer.chip_size}{pad}" if alignment == "dlib150"
            else f"{alignment}-chip{recognizer.chip_size}{pad}")
    model = getattr(recognizer, "cache_id", "")
    model = f"|model{model}" if model else ""
    if detector == "blazeface":  # refitting the box map changes every landmark
        from maskface.geometry.hog_box import weights_digest

        detector = f"blazeface-{weights_digest()}"
    return (f"{recognizer.name}{model}|dim{recognizer.dim}|flip{int(flip)}|{detector}-up"
            f"{upsample}|{chip}|v{_PIPELINE_VERSION}")


class EmbeddingCache:
    """Embeddings on disk, keyed by pipeline and image content (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (key TEXT, digest TEXT, method TEXT, "
            "vector BLOB, PRIMARY KEY (key, digest))"
        )

    def get(self, key: str, digests: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
        """``{digest: (embedding, method)}`` for the digests cached under ``key``."""
        found: dict[str, tuple[np.ndarray, str]] = {}
        unique = list(dict.fromkeys(digests))
        with self._lock:
            for start in range(0, len(unique), 500):  # SQLite's parameter limit
                chunk = unique[start : start + 500]
                rows = self._db.execute(
                    f"SELECT digest, method, vector FROM emb WHERE key = ? AND digest IN "
                    f"({','.join('?' * len(chunk))})", [key, *chunk],
                )
                for digest, method, blob in rows:
                    found[digest] = (np.frombuffer(blob, dtype=np.float32).copy(), method)
        return found

    def put(self, key: str, items: Sequence[tuple[str, np.ndarray, str]]) -> None:
        """Store ``(digest, embedding, method)`` items under ``key``."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)",
                [(key, d, m, np.asarray(v, np.float32).tobytes()) for d, v, m in items],
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        self._db.close()


@dataclass
class EmbeddingResult:
    """Embeddings of ``paths`` in order; rows of images that are not ``ok`` are zero."""

    paths: list[str]
    embeddings: np.ndarray
    ok: np.ndarray
    methods: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)
    fallback_used: list[str] = field(default_factory=list)
    cached: int = 0

    def index(self) -> dict[str, int]:
        """Row of each path."""
        return {p: i for i, p in enumerate(self.paths)}


def _chip(task: tuple) -> tuple[np.ndarray | None, str]:
    """Worker: (aligned chip, "detected" or "center"), or (None, why the image is unusable).

    ``task`` is (path, detector, upsample, alignment, size, padding[, align_with]). The chip
    is cut as the recognizer's ``alignment`` says (dlib's chip for ``dlib150``). With
    ``align_with``, it is cut where the face of that other image of the same size is (the
    unmasked original of a masked copy), and the method is that image's."""
    from maskface.errors import ImageReadError
    from maskface.imageio import read_image

    path, detector, upsample, alignment, size, padding, *rest = task
    other = rest[0] if rest else None
    try:
        image = read_image(path)
    except (ImageReadError, OSError) as e:
        return None, f"unreadable: {e}"
    landmarks = None
    if other is not None:
        try:
            original = read_image(other)
        except (ImageReadError, OSError) as e:
            return None, f"the image it is aligned with is unreadable: {e}"
        if original.shape[:2] != image.shape[:2]:
            return None, (f"{image.shape[1]}x{image.shape[0]} pixels, but the image it is "
                          f"aligned with ({other}) is {original.shape[1]}x{original.shape[0]}")
        landmarks, how = landmarks_or_center(original, detector, upsample)
    chip, _, found = face_chip(image, alignment, size, padding, detector=detector,
                               upsample=upsample, landmarks=landmarks)
    return chip, how if other is not None else found


def _chip_chunk(tasks: list) -> list[tuple[np.ndarray | None, str]]:
    return [_chip(t) for t in tasks]


def auto_workers(images: int) -> int:
    """Detection processes for ``images`` images: one per core, none for a handful."""
    return max(1, min(os.cpu_count() or 1, images // _IMAGES_PER_WORKER))


def _detections(tasks: list, workers: int, chunk: int = _CHUNK,
                window: int = 32) -> Iterator[tuple[np.ndarray | None, str]]:
    """Chips cut by ``workers`` processes (at a lower priority than the recognizer), in task
    order, with at most ``window`` chunks in flight."""
    from maskface.parallel import ordered_map

    chunks = (tasks[i : i + chunk] for i in range(0, len(tasks), chunk))
    for done in ordered_map(_chip_chunk, chunks, workers, window=window):
        yield from done


def embed_paths(
    paths: Sequence[str | os.PathLike[str]],
    recognizer: Recognizer,
    *,
    cache: EmbeddingCache | None = None,
    fallback: str = "center",
    detector: str = "blazeface",
    upsample: int = 1,
    workers: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
    align_with: Sequence[str | os.PathLike[str] | None] | None = None,
) -> EmbeddingResult:
    """Embed one face per image file (see the module docstring for the failure policy).

    Duplicate paths are embedded once. ``workers`` detection processes (default: one per
    core, fewer for a few images).
    ``align_with[i]``, when given and not ``None``, is the image whose face places the chip
    of ``paths[i]`` (same size): a masked copy is then cut exactly where its unmasked
    original's face is, so only the mask's pixels differ, and the method ("detected" or
    "center") and the failure policy follow the original. Such embeddings are cached under
    both files' contents.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; choose from {FALLBACKS}")
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose from {DETECTORS}")
    paths = [str(p) for p in paths]
    if align_with is not None and len(align_with) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(align_with)} images to align them with")
    # An item is an image and the image whose face aligns it (None: its own face).
    others = [None if align_with is None or align_with[i] is None else str(align_with[i])
              for i in range(len(paths))]
    items = [(p, None if other == p else other) for p, other in zip(paths, others, strict=True)]
    unique = list(dict.fromkeys(items))
    key = pipeline_key(recognizer, detector, upsample)
    file_digests: dict[str, str] = {}
    digests: dict[tuple[str, str | None], str] = {}
    unreadable: dict[tuple[str, str | None], str] = {}
    for item in unique:
        try:
            for p in item:
                if p is not None and p not in file_digests:
                    file_digests[p] = file_digest(p)
        except OSError as e:
            unreadable[item] = (f"unreadable: {e}" if p == item[0]
                                else f"the image it is aligned with is unreadable: {e}")
            continue
        path, other = item
        # Not a plain digest: an aligned copy never meets the image's own embedding.
        digests[item] = (file_digests[path] if other is None
                         else f"{file_digests[path]}@{file_digests[other]}")
    hits = cache.get(key, list(digests.values())) if cache is not None else {}
    # Entries are (embedding, method) per digest: "detected" or "center".
    known: dict[str, tuple[np.ndarray, str]] = dict(hits)
    todo = [item for item in unique if item in digests and digests[item] not in known]
    todo = list({digests[item]: item for item in todo}.values())  # identical files once
    alignment = getattr(recognizer, "alignment", "dlib150")
    tasks = [(path, detector, upsample, alignment, recognizer.chip_size, recognizer.padding,
              *(() if other is None else (other,)))
             for path, other in todo]
    n_workers = workers or auto_workers(len(tasks))
    bar = None
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc=f"embedding ({recognizer.name})", unit="img")
    pending: list[tuple[str, np.ndarray, str]] = []

    def flush() -> None:
        if not pending:
            return
        vecs = recognizer.embed_chips(np.stack([c for _, c, _ in pending]))
        new = [(d, v, m) for (d, _, m), v in zip(pending, vecs, strict=True)]
        for d, v, m in new:
            known[d] = (v, m)
        if cache is not None:
            cache.put(key, new)
        pending.clear()

    # Room for the batch being embedded and the next few, so the workers never wait for it.
    chips = _detections(tasks, n_workers, window=4 * max(1, batch_size // _CHUNK))
    for item, (chip, how) in zip(todo, chips, strict=True):
        if bar is not None:
            bar.update()
        if chip is None:
            unreadable[item] = how
            continue
        pending.append((digests[item], chip, how))
        if len(pending) >= batch_size:
            flush()
    flush()
    if bar is not None:
        bar.close()

    dim = recognizer.dim
    out = np.zeros((len(paths), dim), np.float32)
    ok = np.zeros(len(paths), bool)
    methods = [""] * len(paths)
    failures: list[tuple[str, str]] = []
    fallback_used: list[str] = []
    reported: set[tuple[str, str | None]] = set()
    for i, item in enumerate(items):
        p = item[0]
        if item in unreadable or digests.get(item) not in known:
            # a file identical to an unusable one is unusable for the same reason
            if item not in reported:
                failures.append((p, unreadable.get(item) or _same_as(item, digests,
                                                                      unreadable)))
            reported.add(item)
            continue
        vec, method = known[digests[item]]
        methods[i] = method
        if method == "center" and fallback == "exclude":
            if item not in reported:
                failures.append((p, "no face detected"))
            reported.add(item)
            continue
        if method == "center" and item not in reported:
            fallback_used.append(p)
            reported.add(item)
        out[i], ok[i] = vec, True
    return EmbeddingResult(paths, out, ok, methods, failures, fallback_used,
                           cached=sum(1 for item in unique if item in digests
                                      and digests[item] in hits))


def _same_as(item: tuple[str, str | None], digests: dict, unreadable: dict) -> str:
    """The reason an item whose content equals an unusable item's is unusable."""
    twin = next(other for other in unreadable if digests.get(other) == digests[item])
    return unreadable[twin]
