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
import itertools
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from maskface.recognizers.base import Recognizer

FALLBACKS = ("center", "exclude")
DETECTORS = ("dlib", "blazeface", "mediapipe")
# Centre box as fractions of the image (left, top, right, bottom): the mean box dlib's HOG
# detector gives on LFW deep-funneled 250x250 images.
CENTER_BOX = (0.28, 0.32, 0.70, 0.74)
_PIPELINE_VERSION = 1
_CHUNK = 8  # images a detection worker takes at a time


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
    chip = (f"chip{recognizer.chip_size}-pad{recognizer.padding}" if alignment == "dlib150"
            else f"{alignment}-chip{recognizer.chip_size}")
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


@cache
def _dlib_models():
    import dlib

    from maskface.geometry.dlib_backend import dlib_model_path

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        dlib_model_path("shape_predictor_68_face_landmarks.dat")
    )


def _central(boxes: list[tuple[float, float, float, float]], w: int, h: int) -> int:
    # Pre-cropped datasets centre the subject; other faces (crowds, posters) sit off-centre.
    centres = [((b[0] + b[2]) / 2 - w / 2) ** 2 + ((b[1] + b[3]) / 2 - h / 2) ** 2
               for b in boxes]
    return int(np.argmin(centres))


def _landmarks(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    import dlib

    _, predictor = _dlib_models()
    shape = predictor(image, dlib.rectangle(*(round(v) for v in box)))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def center_landmarks(image: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks fitted inside :data:`CENTER_BOX` (the failure-to-enrol fallback)."""
    h, w = image.shape[:2]
    return _landmarks(image, tuple(f * s for f, s in zip(CENTER_BOX, (w, h, w, h), strict=True)))


@cache
def _blazeface():
    from maskface.geometry.blazeface import ShortRangeDetector

    return ShortRangeDetector()


def _blazeface_landmarks(image: np.ndarray) -> np.ndarray | None:
    from maskface.geometry import hog_box

    h, w = image.shape[:2]
    found = _blazeface()(image)
    if not found:
        return None
    box, _, keypoints = found[_central([tuple(b) for b, _, _ in found], w, h)]
    if (box[2] - box[0] + box[3] - box[1]) / 2 < 0.7 * hog_box.FACE_FRACTION * max(h, w):
        # A face small in the photo: detected again framed as the box map was fitted.
        framed = _blazeface().reframe(image, box, hog_box.FACE_FRACTION)
        if framed is not None:
            box, _, keypoints = framed
    # The predictor starts from the box HOG would give this face (see geometry.hog_box).
    return _landmarks(image, tuple(hog_box.predict(box, keypoints)[0]))


def locate(image: np.ndarray, detector: str = "blazeface", upsample: int = 1) -> np.ndarray | None:
    """68 landmarks of the face nearest the image centre, ``None`` if none is found.

    ``dlib``: dlib's HOG detector at upsampling levels 0..``upsample``, stopping at the
    first that finds a face. ``blazeface``: MediaPipe's BlazeFace finds the face, masked or
    not, and its box and keypoints predict the HOG box dlib's 68-point predictor expects
    (:mod:`maskface.geometry.hog_box`), at a tenth of HOG's cost. HOG takes over when
    BlazeFace finds nothing (faces small in a large photo).
    ``mediapipe``: the 68 points read off MediaPipe's face mesh."""
    h, w = image.shape[:2]
    found = None
    if detector == "blazeface":
        found = _blazeface_landmarks(image)
        if found is None:
            return locate(image, "dlib", upsample)
    elif detector == "dlib":
        hog, _ = _dlib_models()
        # Upsampling finds smaller faces but costs ~3x per level: only when needed.
        for level in range(upsample + 1):
            rects = hog(image, level)
            if len(rects):
                break
        if len(rects):
            boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
            found = _landmarks(image, boxes[_central(boxes, w, h)])
    elif detector == "mediapipe":
        from maskface.geometry.analysers import detect_faces
        from maskface.recognizers.alignment import face_landmarks

        faces = detect_faces(image, backend="mediapipe")
        if faces:
            i = _central([tuple(f.box) for f in faces], w, h)
            found = face_landmarks(faces[i])
    else:
        raise ValueError(f"unknown detector {detector!r}; choose from {DETECTORS}")
    return found


def _chip(task: tuple[str, str, int, str, int, float]) -> tuple[np.ndarray | None, str]:
    """Worker: (aligned chip, "detected" or "center"), or (None, why the image is unusable).

    The chip is cut as the recognizer's ``alignment`` says (dlib's chip for ``dlib150``)."""
    from maskface.errors import ImageReadError
    from maskface.imageio import read_image
    from maskface.recognizers.templates import align_chip

    path, detector, upsample, alignment, size, padding = task
    try:
        image = read_image(path)
    except (ImageReadError, OSError) as e:
        return None, f"unreadable: {e}"
    found = locate(image, detector, upsample)
    if found is None:
        return align_chip(image, center_landmarks(image), alignment, size, padding), "center"
    return align_chip(image, found, alignment, size, padding), "detected"


def _chip_chunk(tasks: list) -> list[tuple[np.ndarray | None, str]]:
    return [_chip(t) for t in tasks]


def _lower_priority() -> None:
    """Workers yield to the main process: the recognizer's threads then take the cores
    whenever it has chips, and detection fills the rest. Without this, torch's threads,
    which spin while waiting for each other, ran several times slower beside busy workers."""
    if hasattr(os, "nice"):
        os.nice(10)


def _detections(tasks: list, workers: int, chunk: int = _CHUNK,
                window: int = 32) -> Iterator[tuple[np.ndarray | None, str]]:
    """Chips cut by ``workers`` processes, in task order.

    At most ``window`` chunks are in flight, so memory stays flat however many images
    there are and however slowly the recognizer consumes them."""
    chunks = (tasks[i : i + chunk] for i in range(0, len(tasks), chunk))
    if workers <= 1:
        for part in chunks:
            yield from _chip_chunk(part)
        return
    # spawn: the parent holds torch's thread pools, which must not be forked
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_lower_priority) as pool:
        in_flight = deque(pool.submit(_chip_chunk, part)
                          for part in itertools.islice(chunks, window))
        while in_flight:
            done = in_flight.popleft().result()
            in_flight.extend(pool.submit(_chip_chunk, part)
                             for part in itertools.islice(chunks, 1))
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
) -> EmbeddingResult:
    """Embed one face per image file (see the module docstring for the failure policy).

    Duplicate paths are embedded once. ``workers`` detection processes (default: all cores).
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; choose from {FALLBACKS}")
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose from {DETECTORS}")
    paths = [str(p) for p in paths]
    unique = list(dict.fromkeys(paths))
    key = pipeline_key(recognizer, detector, upsample)
    digests: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for p in unique:
        try:
            digests[p] = file_digest(p)
        except OSError as e:
            unreadable[p] = f"unreadable: {e}"
    hits = cache.get(key, list(digests.values())) if cache is not None else {}
    # Entries are (embedding, method) per digest: "detected" or "center".
    known: dict[str, tuple[np.ndarray, str]] = dict(hits)
    todo = [p for p in unique if p in digests and digests[p] not in known]
    todo = list({digests[p]: p for p in todo}.values())  # identical files once
    alignment = getattr(recognizer, "alignment", "dlib150")
    tasks = [(p, detector, upsample, alignment, recognizer.chip_size, recognizer.padding)
             for p in todo]
    n_workers = workers or os.cpu_count() or 1
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
    for path, (chip, how) in zip(todo, chips, strict=True):
        if bar is not None:
            bar.update()
        if chip is None:
            unreadable[path] = how
            continue
        pending.append((digests[path], chip, how))
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
    reported: set[str] = set()
    for i, p in enumerate(paths):
        if p in unreadable:
            if p not in reported:
                failures.append((p, unreadable[p]))
            reported.add(p)
            continue
        vec, method = known[digests[p]]
        methods[i] = method
        if method == "center" and fallback == "exclude":
            if p not in reported:
                failures.append((p, "no face detected"))
            reported.add(p)
            continue
        if method == "center" and p not in reported:
            fallback_used.append(p)
            reported.add(p)
        out[i], ok[i] = vec, True
    return EmbeddingResult(paths, out, ok, methods, failures, fallback_used,
                           cached=sum(1 for p in unique if p in digests
                                      and digests[p] in hits))
