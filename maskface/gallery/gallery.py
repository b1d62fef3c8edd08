"""An identification gallery: enrol people from photos, then name the faces in a photo.

A gallery is one folder::

    gallery.sqlite   metadata and templates (the source of truth, see .store)
    index.faiss      the faiss index of the templates (a cache of gallery.sqlite, see .index)

Templates are unit-length embeddings of one recognizer, cut by one detector and alignment;
the gallery records them and refuses anything else. A probe's score for an identity is its
best cosine similarity over that identity's templates, so extra templates (more photos,
synthetic masked variants) can only help a probe that resembles one of them.

Writes are atomic per call: :meth:`Gallery.enrol` computes every template first, then stores
them in one SQLite transaction, so a failure or a kill leaves the gallery as it was before or
after the whole call. The index file is rewritten atomically after each change; if a process
dies between the two writes, the next open notices the stale index (it carries the
generation it reflects) and brings it up to date from the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import secrets
import shutil
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskface.errors import ImageReadError, InvalidInputError, MaskfaceError
from maskface.gallery.index import VectorIndex, check_kind, index_options
from maskface.gallery.store import (
    SYNTHETIC_PREFIX,
    NewTemplate,
    Store,
    TemplateRow,
    is_synthetic,
)

if TYPE_CHECKING:
    from maskface.recognizers.base import Recognizer

DB_NAME = "gallery.sqlite"
INDEX_NAME = "index.faiss"
UNKNOWN = "unknown"
# Styles drawn for mask-aware enrolment, one template each, renderers alternating.
DEFAULT_MASK_STYLES: tuple[str, ...] = ("surgical", "kn95", "n95", "cloth")
DEFAULT_RENDERERS: tuple[str, ...] = ("2d", "3d")
# Cosine thresholds measured on LFW (benchmarks/RESULTS.md, "Open-set identification"):
# with unmasked probes, 0.95 gives dlib-resnet FPIR 0.5% against 400 enrolled people and
# 2.1% against 1,680; dlib-resnet-masked reaches FPIR 1% at 0.958 against 400 people of
# folds 6-10, so 0.96 (FPIR grows with the gallery: calibrate() for the one deployed).
DEFAULT_THRESHOLDS: dict[str, float] = {"dlib-resnet": 0.95, "dlib": 0.95,
                                        "dlib-resnet-masked": 0.96}
# For recognizers not measured here: a cautious guess, to be replaced by calibrate().
GENERIC_THRESHOLD = 0.5
_MAX_IDENTITY = 200
_SAVE_EVERY_S = 30.0  # enrol_tree persists the index at least this often


class GalleryError(InvalidInputError):
    """A gallery cannot do what was asked: bad input, wrong recognizer, damaged folder.
    (An :class:`~maskface.errors.InvalidInputError`, so also a ``ValueError``.)"""


@dataclass(frozen=True)
class FaceMatch:
    """One candidate identity and its score (best cosine similarity over its templates)."""

    identity: str
    score: float


@dataclass
class SearchResult:
    """One face of a probe photo: where it is, who it may be, and whether it wears a mask.

    ``identity`` is the best match when its score reaches the gallery's threshold, else
    ``"unknown"``; ``score`` is the best match's score either way (-1 for an empty gallery).
    """

    box: np.ndarray
    landmarks: np.ndarray
    matches: list[FaceMatch]
    identity: str
    score: float
    masked: bool
    mask_probability: float
    detector_score: float = 1.0

    def as_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "identity": self.identity,
                "score": round(self.score, 4), "masked": self.masked,
                "mask_probability": round(self.mask_probability, 4),
                "detector_score": round(self.detector_score, 4),
                "matches": [{"identity": m.identity, "score": round(m.score, 4)}
                            for m in self.matches]}


@dataclass
class EnrolledImage:
    """A reference image that gave templates: the photo's own and any masked variants."""

    identity: str
    source: str
    templates: int
    variants: list[str]
    note: str = ""


@dataclass
class SkippedImage:
    """A reference image that gave no template, and why."""

    identity: str
    source: str
    reason: str


@dataclass
class EnrolReport:
    """What an enrolment did with each image."""

    added: list[EnrolledImage] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)

    @property
    def templates(self) -> int:
        return sum(a.templates for a in self.added)

    @property
    def identities(self) -> list[str]:
        return list(dict.fromkeys(a.identity for a in self.added))

    def extend(self, other: EnrolReport) -> None:
        self.added += other.added
        self.skipped += other.skipped

    def as_dict(self) -> dict:
        return {"templates": self.templates, "identities": self.identities,
                "added": [asdict(a) for a in self.added],
                "skipped": [asdict(s) for s in self.skipped]}

    def __str__(self) -> str:
        people = len(self.identities)
        text = (f"enrolled {len(self.added)} image(s) of {people} "
                f"{'identity' if people == 1 else 'identities'} as {self.templates} "
                f"template(s); skipped {len(self.skipped)}")
        return text


@dataclass
class Calibration:
    """A threshold chosen for a false-positive identification rate on non-mated probes."""

    threshold: float
    target_fpir: float
    fpir: float  # measured at the threshold on the same probes
    nonmated: int
    false_positives: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"threshold {self.threshold:.4f}: FPIR {100 * self.fpir:.3g}% "
                f"({self.false_positives} of {self.nonmated} non-mated probes; target "
                f"{100 * self.target_fpir:.3g}%)")
        if self.nonmated * self.target_fpir < 1:
            text += (f"; {self.nonmated} probes cannot resolve an FPIR of "
                     f"{100 * self.target_fpir:.3g}% (need at least "
                     f"{math.ceil(1 / self.target_fpir)}), so no false positive is allowed")
        return text


def check_identity(name: object) -> str:
    """The identity name, stripped; :class:`GalleryError` when it cannot be one."""
    if not isinstance(name, str):
        raise GalleryError(f"an identity is a name (str), got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise GalleryError("the identity name is empty")
    if len(name) > _MAX_IDENTITY:
        raise GalleryError(f"the identity name is {len(name)} characters long; at most "
                           f"{_MAX_IDENTITY}")
    if re.search(r"[\x00-\x1f\x7f]", name):
        raise GalleryError(f"the identity name {name!r} contains control characters")
    if name.lower() == UNKNOWN:
        raise GalleryError(f"{name!r} is reserved for faces below the threshold; choose "
                           "another name")
    return name


def threshold_at_fpir(nonmated_scores: np.ndarray, fpir: float) -> float:
    """The lowest threshold (accept ``score >= t``) with at most ``fpir`` of the non-mated
    probes' top scores accepted: just above the ``floor(fpir * n) + 1``-th highest."""
    s = np.sort(np.asarray(nonmated_scores, dtype=np.float64))[::-1]
    if not len(s):
        raise GalleryError("no non-mated scores to set a threshold from")
    if not 0 <= fpir < 1:
        raise GalleryError(f"FPIR must be in [0, 1), got {fpir}")
    allowed = math.floor(fpir * len(s) + 1e-9)
    if allowed >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.inf))


def image_digest(image: np.ndarray) -> str:
    """blake2b (128-bit) of an image's shape and pixels: the same photo under another name
    (or read from another format losslessly) is recognised."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def as_image(item: object) -> np.ndarray:
    """An RGB uint8 array from a path or an array; a clear error for anything else."""
    if isinstance(item, (str, os.PathLike)):
        from maskface.imageio import read_image

        return read_image(item)
    if not isinstance(item, np.ndarray):
        raise GalleryError(f"expected an image path or an RGB uint8 array, got "
                           f"{type(item).__name__}")
    from maskface.geometry.locate import _as_rgb

    try:
        return _as_rgb(item)
    except ValueError as e:
        raise GalleryError(str(e)) from None


def masked_variants(image: np.ndarray, styles: Sequence[str] = DEFAULT_MASK_STYLES,
                    renderers: Sequence[str] = DEFAULT_RENDERERS, seed: int = 0,
                    key: str = "") -> list[tuple[str, np.ndarray]]:
    """Synthetic masked copies of a photo: ``[(variant name, image)]``, one per style.

    Renderers alternate over the styles; each copy draws a random plausible look of its style
    (colour, pattern). The random draws depend on ``seed``, ``key`` (e.g. the image digest) and
    the variant's position only, so the same photo always gets the same masks. Styles whose
    mask could not be drawn (no face found by the mask renderer) are left out."""
    from maskface.synthesis import mask_image

    out = []
    salt = int(hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), 16)
    for k, style in enumerate(styles):
        renderer = renderers[k % len(renderers)]
        rng = np.random.default_rng([seed, salt, k])
        result = mask_image(image, style, renderer=renderer, vary=True, seed=rng)
        if result.status == "ok":
            out.append((f"{SYNTHETIC_PREFIX}{style}:{renderer}", result.image))
    return out


def _check_styles(styles: Sequence[str] | None, renderers: Sequence[str]) -> tuple[
        tuple[str, ...], tuple[str, ...]]:
    """Canonical style and renderer names (aliases accepted); GalleryError otherwise."""
    from maskface.render.registry import RENDERERS
    from maskface.styles.registry import STYLES

    styles = tuple(DEFAULT_MASK_STYLES if styles is None else styles)
    if not styles:
        raise GalleryError(f"no mask style given; choose from {', '.join(STYLES.list())}")
    if not renderers:
        raise GalleryError(f"no renderer given; choose from {', '.join(RENDERERS.list())}")
    try:
        return (tuple(STYLES.resolve(s) for s in styles),
                tuple(RENDERERS.resolve(r) for r in renderers))
    except MaskfaceError as e:
        raise GalleryError(str(e)) from None


def recognizer_signature(recognizer) -> dict:
    """What must match for two embeddings to be comparable."""
    return {"name": recognizer.name, "cache_id": getattr(recognizer, "cache_id", ""),
            "dim": int(recognizer.dim), "alignment": getattr(recognizer, "alignment", "dlib150"),
            "chip_size": int(recognizer.chip_size), "padding": float(recognizer.padding),
            "flip": bool(getattr(recognizer, "flip", False))}


def _portable_kwargs(kwargs: dict) -> dict:
    """Recognizer options as stored: model files made absolute, so the gallery can be opened
    from another working directory."""
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if key in ("model", "path") and isinstance(value, str) and os.path.exists(value):
            value = os.path.abspath(value)
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise GalleryError(f"recognizer option {key}={value!r} cannot be stored in a "
                               "gallery; pass plain values (a model file path, flags)")
        out[key] = value
    return out


class Gallery:
    """A folder of enrolled identities searchable by face (see the module docstring).

    Create with :meth:`create`, reopen with :meth:`open`. Thread-safe; several processes may
    open the same gallery, and each sees the others' changes at its next call.
    """

    def __init__(self, path: Path, store: Store, *, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._store = store
        self._lock = threading.RLock()
        self._recognizer = None
        self._defer_save = 0
        meta = store.meta()
        self._meta = meta
        self.detector: str = meta["detector"]
        self.recognizer_name: str = meta["recognizer"]
        self.recognizer_kwargs: dict = dict(meta["recognizer_kwargs"])
        self.signature: dict = dict(meta["signature"])
        self._dim = int(self.signature["dim"])
        self._load_index()

    # -- creating and opening -------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], recognizer: str | Recognizer = "dlib-resnet",
               detector: str = "blazeface", index: str = "flat",
               recognizer_kwargs: dict | None = None, *, index_options: dict | None = None,
               threshold: float | None = None,
               masked_threshold: float | None = None) -> Gallery:
        """A new, empty gallery in folder ``path`` (which must not hold a gallery yet).

        ``recognizer`` is any registered name (:func:`maskface.recognizers.list_recognizers`)
        with ``recognizer_kwargs`` (e.g. ``{"model": "w.pth"}``), or a recognizer already
        built from that name and those options (it is recorded by them, and checked when the
        gallery is reopened); ``index`` is ``flat`` (exact), ``hnsw`` or ``ivf``
        (approximate, for large galleries). ``threshold`` decides bare faces and
        ``masked_threshold`` masked ones (by default the same: masked strangers score
        higher against mask-aware templates, so calibrate it with ``masked=True`` there)."""
        from maskface.geometry.locate import DETECTORS
        from maskface.recognizers import create_recognizer

        path = Path(path)
        if (path / DB_NAME).exists():
            raise GalleryError(f"{path} already holds a gallery; open it, or remove it first")
        if path.exists() and not path.is_dir():
            raise GalleryError(f"{path} exists and is not a folder")
        if detector not in DETECTORS:
            raise GalleryError(f"unknown detector {detector!r}; choose from "
                               f"{', '.join(DETECTORS)}")
        try:
            check_kind(index)
            options = _index_options(index, index_options)
        except ValueError as e:
            raise GalleryError(str(e)) from None
        kwargs = _portable_kwargs(dict(recognizer_kwargs or {}))
        if isinstance(recognizer, str):
            recognizer = _recognizer_name(recognizer)
            try:
                rec = create_recognizer(recognizer, **kwargs)
            except MaskfaceError:
                raise
            except (ValueError, TypeError, OSError) as e:
                raise GalleryError(f"cannot build recognizer {recognizer!r}: {e}") from None
        else:
            rec, recognizer = recognizer, recognizer.name
        if threshold is None:
            threshold = DEFAULT_THRESHOLDS.get(recognizer, GENERIC_THRESHOLD)
            source = (f"default for {recognizer} (FPIR 0.5-0.7% on LFW with 400 people "
                      "enrolled)"
                      if recognizer in DEFAULT_THRESHOLDS else
                      "generic default: calibrate it (maskface gallery calibrate)")
        else:
            source = "set at creation"
        # How high masked strangers score depends on whether the gallery holds masked
        # variants (dlib-resnet on 400 held-out LFW people: at 0.95, 0.2% of masked strangers
        # pass a plain gallery and 54% a mask-aware one), which is not known yet: calibrate.
        masked_source = ("same as the threshold: calibrate it on masked strangers"
                         if masked_threshold is None else "set at creation")
        if masked_threshold is None:
            masked_threshold = threshold
        from maskface import __version__

        meta = {"recognizer": recognizer, "recognizer_kwargs": kwargs,
                "signature": recognizer_signature(rec), "detector": detector,
                "index": index, "index_options": options, "threshold": float(threshold),
                "threshold_source": source, "masked_threshold": float(masked_threshold),
                "masked_threshold_source": masked_source, "maskface": __version__,
                "uid": secrets.token_hex(8),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        path.mkdir(parents=True, exist_ok=True)
        # Built under a temporary name and renamed in: a killed create leaves no half gallery.
        tmp = path / f".{DB_NAME}.{os.getpid()}.creating"
        tmp.unlink(missing_ok=True)
        Store.initialise(tmp, meta)
        os.replace(tmp, path / DB_NAME)
        gallery = cls(path, Store(path / DB_NAME), readonly=False)
        gallery._recognizer = rec
        gallery._save_index()
        return gallery

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False,
             recognizer: str | None = None, recognizer_kwargs: dict | None = None,
             detector: str | None = None) -> Gallery:
        """The gallery in folder ``path``. ``readonly`` opens it without ever writing (a
        stale index is then repaired in memory only). ``recognizer``, ``recognizer_kwargs``
        and ``detector``, when given, must be what the gallery was built with."""
        path = Path(path)
        if not (path / DB_NAME).is_file():
            what = "does not exist" if not path.exists() else f"holds no {DB_NAME}"
            raise GalleryError(f"{path} is not a gallery: it {what} "
                               "(create one with 'maskface gallery create')")
        import sqlite3

        try:
            store = Store(path / DB_NAME, readonly=readonly)
            meta = store.meta()
        except sqlite3.DatabaseError as e:
            raise GalleryError(f"{path / DB_NAME} is damaged or not a gallery: {e}") from None
        for key in ("recognizer", "signature", "detector", "index"):
            if key not in meta:
                raise GalleryError(f"{path / DB_NAME} is not a maskface gallery (no {key})")
        wanted = {"recognizer": recognizer and _recognizer_name(recognizer),
                  "detector": detector}
        for key, value in wanted.items():
            if value is not None and value != meta[key]:
                store.close()
                raise GalleryError(
                    f"gallery {path} was built with {key} {meta[key]!r}, not {value!r}: "
                    "templates of different pipelines cannot be compared; use a new gallery")
        if recognizer_kwargs is not None and _portable_kwargs(recognizer_kwargs) != meta[
                "recognizer_kwargs"]:
            store.close()
            raise GalleryError(f"gallery {path} was built with recognizer options "
                               f"{meta['recognizer_kwargs']}, not {recognizer_kwargs}")
        return cls(path, store, readonly=readonly)

    def close(self) -> None:
        """Persist the index if it changed and close the database."""
        with self._lock:
            if self._defer_save:
                self._defer_save = 0
                self._save_index()
            self._store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Gallery({str(self.path)!r}, recognizer={self.recognizer_name!r}, "
                f"index={self.index_kind!r}, identities={len(self.identities())}, "
                f"templates={len(self)})")

    # -- the recognizer -------------------------------------------------------------------
    @property
    def recognizer(self):
        """The gallery's recognizer, built on first use and checked against the record."""
        with self._lock:
            if self._recognizer is None:
                from maskface.recognizers import create_recognizer

                try:
                    rec = create_recognizer(self.recognizer_name, **self.recognizer_kwargs)
                except MaskfaceError:
                    raise
                except (ValueError, TypeError, OSError) as e:
                    raise GalleryError(f"cannot rebuild the gallery's recognizer "
                                       f"{self.recognizer_name!r}: {e}") from None
                now = recognizer_signature(rec)
                if now != self.signature:
                    diff = {k: (self.signature.get(k), now[k]) for k in now
                            if self.signature.get(k) != now[k]}
                    raise GalleryError(
                        f"the recognizer {self.recognizer_name!r} now differs from the one "
                        f"gallery {self.path} was built with ({diff}: recorded, now); its "
                        "templates cannot be compared with new embeddings: re-enrol into a "
                        "new gallery")
                self._recognizer = rec
            return self._recognizer

    # -- properties -----------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """Scores at or above it name a face; below it the face is "unknown". Saved."""
        return float(self._meta["threshold"])

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.set_threshold(value)

    @property
    def masked_threshold(self) -> float:
        """The threshold for faces the mask flag calls masked (galleries made before it
        existed use :attr:`threshold`). Saved."""
        return float(self._meta.get("masked_threshold", self.threshold))

    def threshold_for(self, masked: bool) -> float:
        """The threshold a face is decided with, by its mask flag."""
        return self.masked_threshold if masked else self.threshold

    def set_threshold(self, value: float, source: str = "set by hand", *,
                      masked: bool = False) -> None:
        """Set the threshold of bare faces (``masked``: of masked faces)."""
        value = float(value)
        if not math.isfinite(value) or not -1 <= value <= 1.0001:
            raise GalleryError(f"a threshold is a cosine similarity in [-1, 1], got {value}")
        self._check_writable()
        key = "masked_threshold" if masked else "threshold"
        with self._lock:
            self._store.set_meta(**{key: value, f"{key}_source": source})
            self._meta.update({key: value, f"{key}_source": source})

    @property
    def threshold_source(self) -> str:
        return str(self._meta.get("threshold_source", ""))

    @property
    def masked_threshold_source(self) -> str:
        return str(self._meta.get("masked_threshold_source", self.threshold_source))

    @property
    def index_kind(self) -> str:
        return self._index.kind

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._ids)

    def identities(self) -> dict[str, int]:
        """``{identity: number of templates}``, sorted by name."""
        return self._store.identities()

    def templates(self, identity: str | None = None) -> list[TemplateRow]:
        """The stored templates (all, or one identity's), without their vectors."""
        return self._store.templates(identity)

    def info(self) -> dict:
        """Everything about the gallery a person may ask: pipeline, index, sizes, threshold."""
        with self._lock:
            self._refresh()
            meta = self._store.meta()
            return {"path": str(self.path), "recognizer": self.recognizer_name,
                    "recognizer_kwargs": self.recognizer_kwargs, "signature": self.signature,
                    "detector": self.detector, "index": self._index.kind,
                    "index_options": self._index.options, "index_exact": self._index.exact,
                    "threshold": self.threshold, "threshold_source": self.threshold_source,
                    "masked_threshold": self.masked_threshold,
                    "masked_threshold_source": self.masked_threshold_source,
                    "identities": len(self._store.identities()), "templates": len(self._ids),
                    "generation": meta["generation"], "created": meta.get("created"),
                    "maskface": meta.get("maskface")}

    # -- the index ------------------------------------------------------------------------
    def _load_index(self) -> None:
        """The index (and the labels of its templates) from its file when it reflects this
        database, brought up to date with the changes made since; else rebuilt."""
        kind = self._meta["index"]
        options = self._meta.get("index_options", {})
        loaded = None
        file = self.path / INDEX_NAME
        if file.is_file():
            try:
                loaded = VectorIndex.loads(file.read_bytes())
            except (ValueError, OSError) as e:
                warnings.warn(f"{file}: {e}; rebuilding the index from {DB_NAME}",
                              stacklevel=3)
        with self._store.read():
            gen = self._store.generation()
            usable = (loaded is not None and loaded[0].kind == kind
                      and loaded[0].dim == self._dim
                      and loaded[1].get("uid") == self._meta.get("uid")
                      and loaded[1].get("generation", gen + 1) <= gen
                      and {"ids", "codes", "synthetic"} <= set(loaded[2]))
            if usable:
                self._index, head, arrays = loaded
                self._gen, self._last_id = int(head["generation"]), int(head["last_id"])
                self._names = list(head["names"])
                self._code_of = {n: i for i, n in enumerate(self._names)}
                self._ids, self._codes = arrays["ids"], arrays["codes"]
                self._synthetic = arrays["synthetic"].astype(bool)
                self._count_labels()
                changed = self._catch_up()
            else:
                # no file, or one of another gallery or state: rebuilt from the database
                self._index, self._gen, self._last_id = (
                    VectorIndex(kind, self._dim, dict(options)), 0, 0)
                changed = self._catch_up(labels=True) or loaded is not None
        if changed and not self.readonly:
            self._save_index()

    def _catch_up(self, labels: bool = False) -> bool:
        """Apply the database's changes since the index's generation (inside a read
        transaction); whether the index changed. ``labels``: read every template's label
        from the database instead of updating the ones in memory."""
        gen = self._store.generation()
        if gen == self._gen and not labels:
            return False
        changed = gen != self._gen
        removed = self._store.removed_since(self._gen)
        if len(removed) and not self._index.can_remove():
            self._index = self._rebuilt(self._index.kind, self._index.options)
            self._last_id, labels = self._store.last_id(), True
        elif len(removed):
            self._index.remove(removed)
            if not labels:
                self._keep_labels(~np.isin(self._ids, removed))
        for ids, names, vecs, synthetic in self._store.rows(self._dim, after=self._last_id):
            self._index.add(ids, vecs)
            if not labels:
                self._append_labels(ids, names, synthetic)
        self._last_id = max(self._last_id, self._store.last_id())
        self._gen = gen
        if labels:
            self._set_labels(*self._store.labels())
        if self._index.needs_training():
            self._index = self._rebuilt(self._index.kind, self._index.options)
            changed = True
        if len(self._index) != len(self._ids):  # should not happen; never trust a bad index
            warnings.warn(f"gallery index of {self.path} held {len(self._index)} templates "
                          f"for {len(self._ids)} stored; rebuilt", stacklevel=3)
            self._index = self._rebuilt(self._index.kind, self._index.options)
            self._set_labels(*self._store.labels())
            changed = True
        return changed

    def _rebuilt(self, kind: str, options: dict) -> VectorIndex:
        ids, vecs = [], []
        for i, _, v, _ in self._store.rows(self._dim):
            ids.append(i)
            vecs.append(v)
        if ids:
            return VectorIndex.build(kind, self._dim, np.concatenate(ids),
                                     np.concatenate(vecs), options)
        return VectorIndex(kind, self._dim, dict(options))

    # Labels: template ids (sorted) -> identity codes -> names. Codes are given in order of
    # first appearance and never reused while the gallery is open, so adding is O(new).
    # Each template also carries whether it is a synthetic masked variant (mask-aware
    # enrolment), which bare probes are not matched against.
    def _set_labels(self, ids: np.ndarray, names: list[str], synthetic: np.ndarray) -> None:
        self._names: list[str] = []
        self._code_of: dict[str, int] = {}
        self._ids = np.zeros(0, np.int64)
        self._codes = np.zeros(0, np.int64)
        self._synthetic = np.zeros(0, bool)
        self._append_labels(ids, names, synthetic)

    def _append_labels(self, ids: np.ndarray, names: Sequence[str],
                       synthetic: np.ndarray | Sequence[bool]) -> None:
        for n in names:
            if n not in self._code_of:
                self._code_of[n] = len(self._names)
                self._names.append(n)
        new = np.fromiter((self._code_of[n] for n in names), np.int64, len(names))
        self._ids = np.concatenate([self._ids, np.asarray(ids, np.int64)])
        self._codes = np.concatenate([self._codes, new])
        self._synthetic = np.concatenate([self._synthetic, np.asarray(synthetic, bool)])
        self._count_labels()

    def _keep_labels(self, keep: np.ndarray) -> None:
        self._ids, self._codes = self._ids[keep], self._codes[keep]
        self._synthetic = self._synthetic[keep]
        self._count_labels()

    def _count_labels(self) -> None:
        counts = np.bincount(self._codes, minlength=len(self._names))
        self._max_per_identity = int(counts.max()) if len(counts) else 0

    def _refresh(self) -> None:
        """Catch up with changes another process (or gallery object) made."""
        if self._store.generation() != self._gen:
            with self._store.read():
                changed = self._catch_up()
            if changed and not self.readonly and not self._defer_save:
                self._save_index()

    def _save_index(self) -> None:
        if self.readonly:
            return
        if self._defer_save:
            self._defer_save = 2  # saved when the batch ends
            return
        from maskface.atomic import write_bytes_atomic

        # the labels go with the index, so opening needs no scan of the database
        data = self._index.dumps({"generation": self._gen, "last_id": self._last_id,
                                  "uid": self._meta.get("uid"), "names": self._names},
                                 {"ids": self._ids, "codes": self._codes,
                                  "synthetic": self._synthetic})
        write_bytes_atomic(self.path / INDEX_NAME, data)

    @contextlib.contextmanager
    def batch(self) -> Iterator[Gallery]:
        """Defer index writes to the end of the block (each change is still committed to
        the database atomically; the index file catches up at the end, or on next open)."""
        with self._lock:
            outer = self._defer_save
            self._defer_save = self._defer_save or 1
            try:
                yield self
            finally:
                pending = self._defer_save == 2
                self._defer_save = outer
                if pending and not outer:
                    self._save_index()
                elif pending:
                    self._defer_save = 2

    def rebuild_index(self, kind: str | None = None, options: dict | None = None) -> None:
        """Rebuild the index from the templates, as ``kind`` (default: the current one) with
        ``options`` (see :data:`maskface.gallery.index.DEFAULT_OPTIONS`)."""
        self._check_writable()
        kind = kind or self._index.kind
        try:
            check_kind(kind)
            opts = _index_options(kind, options if options is not None else (
                self._index.options if kind == self._index.kind else None))
        except ValueError as e:
            raise GalleryError(str(e)) from None
        with self._lock:
            with self._store.read():
                self._catch_up()
                index = self._rebuilt(kind, opts)
            self._store.set_meta(index=kind, index_options=opts)
            self._meta.update(index=kind, index_options=opts)
            self._index = index
            self._gen = self._store.generation()
            self._save_index()

    def _check_writable(self) -> None:
        if self.readonly:
            raise GalleryError(f"gallery {self.path} was opened read-only")

    # -- adding and removing --------------------------------------------------------------
    def add_embeddings(self, identity: str | Sequence[str], embeddings: np.ndarray, *,
                       sources: Sequence[str] | None = None,
                       digests: Sequence[str] | None = None,
                       variants: Sequence[str] | None = None,
                       masked: Sequence[bool] | None = None,
                       boxes: Sequence[Sequence[float]] | None = None,
                       signature: dict | None = None) -> np.ndarray:
        """Store ready embeddings (N, dim) as templates of ``identity`` (one name, or one
        per row for bulk loads), atomically: all rows or none.

        For embeddings computed elsewhere (benchmarks, other tools): ``signature`` (from
        :func:`recognizer_signature` of the recognizer that made them) is checked against the
        gallery's. Returns the new template ids."""
        self._check_writable()
        if signature is not None and signature != self.signature:
            raise GalleryError(
                f"embeddings from {signature.get('name')!r} ({signature}) cannot join gallery "
                f"{self.path}, built with {self.signature.get('name')!r} ({self.signature})")
        emb = self._rows(embeddings)
        norms = np.linalg.norm(emb, axis=1)
        if not np.isfinite(emb).all() or (norms < 1e-6).any():
            raise GalleryError("embeddings must be finite and non-zero")
        emb = emb / norms[:, None]
        n = len(emb)

        def column(values, default):
            values = [default] * n if values is None else list(values)
            if len(values) != n:
                raise GalleryError(f"{n} embeddings but {len(values)} metadata values")
            return values

        if isinstance(identity, str):
            names = [check_identity(identity)] * n
        else:
            checked: dict[str, str] = {}
            names = [checked.setdefault(i, check_identity(i)) if i not in checked
                     else checked[i] for i in column(identity, "")]
        items = [NewTemplate(name, str(s), str(d), str(v), bool(m), list(b), e)
                 for name, s, d, v, m, b, e in zip(
                     names, column(sources, "array"), column(digests, ""),
                     column(variants, "photo"), column(masked, False),
                     column(boxes, [0, 0, 0, 0]), emb, strict=True)]
        return self._add(items)

    def _add(self, items: list[NewTemplate]) -> np.ndarray:
        if not items:
            return np.zeros(0, np.int64)
        with self._lock:
            self._refresh()
            ids, gen = self._store.add(items)
            # The database is committed: from here on only the in-memory index follows it.
            if gen == self._gen + 1:
                self._index.add(ids, np.stack([t.vector for t in items]))
                self._append_labels(ids, [t.identity for t in items],
                                    [is_synthetic(t.variant) for t in items])
                self._gen, self._last_id = gen, max(self._last_id, int(ids.max()))
            else:  # another process wrote in between: take its changes and ours from disk
                with self._store.read():
                    self._catch_up(labels=True)
            if self._index.needs_training():
                self._index = self._rebuilt(self._index.kind, self._index.options)
            self._save_index()
        return ids

    def remove(self, identity: str) -> int:
        """Remove every template of ``identity``; returns how many there were (0: none)."""
        self._check_writable()
        with self._lock:
            self._refresh()
            ids, gen = self._store.remove_identity(identity)
            if not len(ids):
                return 0
            if gen != self._gen + 1:  # another process wrote in between
                with self._store.read():
                    self._catch_up(labels=True)
            else:
                if self._index.can_remove():
                    self._index.remove(ids)
                else:
                    self._index = self._rebuilt(self._index.kind, self._index.options)
                self._keep_labels(~np.isin(self._ids, ids))
                self._gen = gen
            self._save_index()
            return len(ids)

    # -- enrolment ------------------------------------------------------------------------
    def _chips(self, image: np.ndarray, faces: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """(recognizer chips, mask-classifier chips) of located faces of one image."""
        from maskface.gallery.mask_classifier import classifier_chip
        from maskface.geometry.locate import cut_chip

        rec = self.recognizer
        return (np.stack([cut_chip(image, f.landmarks, rec.alignment, rec.chip_size,
                                   rec.padding) for f in faces]),
                np.stack([classifier_chip(image, f.landmarks) for f in faces]))

    def embed_faces(self, image: np.ndarray, faces: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (N, dim), mask probabilities (N,)) of located faces of one image."""
        from maskface.gallery.mask_classifier import default_classifier

        if not faces:
            return np.zeros((0, self._dim), np.float32), np.zeros(0)
        chips, small = self._chips(image, faces)
        return self.recognizer.embed_chips(chips), default_classifier().probability(small)

    def _locate(self, image: np.ndarray):
        from maskface.geometry.locate import locate_faces

        return locate_faces(image, self.detector)

    def enrol(self, identity: str, images: Sequence[str | os.PathLike[str] | np.ndarray], *,
              mask_aware: bool = False, styles: Sequence[str] | None = None,
              renderers: Sequence[str] = DEFAULT_RENDERERS, seed: int = 0) -> EnrolReport:
        """Enrol ``identity`` from reference photos (paths or RGB arrays), atomically.

        Each photo gives the template of its largest face; photos that cannot be read, hold
        no face, or were already enrolled for this identity are skipped and reported. With
        ``mask_aware``, each photo also gives one template per mask style in ``styles``
        (default :data:`DEFAULT_MASK_STYLES`), drawn by our renderers (alternating over
        ``renderers``) and seeded by ``seed`` and the photo, detected again as a masked probe
        would be. Nothing is stored unless the whole call succeeds."""
        from maskface.gallery.mask_classifier import default_classifier

        identity = check_identity(identity)
        self._check_writable()
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            images = [images]
        if mask_aware:
            styles, renderers = _check_styles(styles, renderers)
        report = EnrolReport()
        known = self._store.digests(identity)
        # Chips are cut as photos come and embedded together at the end: one batch for the
        # recognizer, and no photo is kept in memory longer than its own turn.
        meta: list[tuple[str, str, str, np.ndarray]] = []  # source, digest, variant, box
        chips, small = [], []
        for i, item in enumerate(images):
            source = os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"array[{i}]"
            try:
                image = as_image(item)
            except (ImageReadError, GalleryError) as e:
                report.skipped.append(SkippedImage(identity, source, str(e)))
                continue
            digest = image_digest(image)
            if digest in known:
                report.skipped.append(SkippedImage(identity, source,
                                                   "already enrolled for this identity"))
                continue
            faces = self._locate(image)
            if not faces:
                report.skipped.append(SkippedImage(identity, source, "no face found"))
                continue
            known.add(digest)
            note = f"{len(faces)} faces; enrolled the largest" if len(faces) > 1 else ""
            chip, tiny = self._chips(image, faces[:1])
            chips.append(chip[0])
            small.append(tiny[0])
            meta.append((source, digest, "photo", faces[0].box))
            variants = ["photo"]
            if mask_aware:
                for variant, masked in masked_variants(image, styles, renderers, seed,
                                                       digest):
                    found = self._locate(masked)
                    if not found:
                        continue
                    chip, _ = self._chips(masked, found[:1])
                    chips.append(chip[0])
                    meta.append((source, digest, variant, found[0].box))
                    variants.append(variant)
                if len(variants) - 1 < len(styles):
                    extra = (f"{len(styles) - len(variants) + 1} of {len(styles)} masked "
                             "variants could not be drawn or found")
                    note = f"{note}; {extra}" if note else extra
            report.added.append(EnrolledImage(identity, source, len(variants), variants, note))
        if chips:
            emb = self.recognizer.embed_chips(np.stack(chips))
            photo_masked = iter(default_classifier().probability(np.stack(small)) >= 0.5)
            items = [NewTemplate(identity, source, digest, variant,
                                 bool(next(photo_masked)) if variant == "photo" else True,
                                 box, e)
                     for (source, digest, variant, box), e in zip(meta, emb, strict=True)]
            self._add(items)
        return report

    def enrol_tree(self, root: str | os.PathLike[str], *, mask_aware: bool = False,
                   styles: Sequence[str] | None = None,
                   renderers: Sequence[str] = DEFAULT_RENDERERS, seed: int = 0,
                   progress: bool = False) -> EnrolReport:
        """Enrol every ``<identity>/<image>`` under ``root`` (folder name = identity).

        Each identity is stored atomically; a killed run keeps the identities it finished,
        and running it again resumes (images already enrolled are skipped)."""
        from maskface.imageio import iter_images

        root = Path(root)
        if not root.is_dir():
            raise GalleryError(f"{root} is not a folder of <identity>/<image> folders")
        people: dict[str, list[Path]] = {}
        report = EnrolReport()
        for path in iter_images(root):
            rel = path.relative_to(root)
            if len(rel.parts) < 2:
                report.skipped.append(SkippedImage("", str(path), "not inside an identity "
                                                   "folder (<identity>/<image>)"))
                continue
            people.setdefault(rel.parts[0], []).append(path)
        if not people:
            raise GalleryError(f"no <identity>/<image> files under {root}")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(map(len, people.values())), desc="enrolling", unit="img")
        last_save = time.monotonic()
        with self.batch():
            for identity, paths in people.items():
                try:
                    check_identity(identity)
                except GalleryError as e:
                    report.skipped += [SkippedImage(identity, str(p), str(e)) for p in paths]
                    continue
                report.extend(self.enrol(identity, paths, mask_aware=mask_aware,
                                         styles=styles, renderers=renderers, seed=seed))
                if bar is not None:
                    bar.update(len(paths))
                if time.monotonic() - last_save > _SAVE_EVERY_S:
                    self._flush_index()
                    last_save = time.monotonic()
        if bar is not None:
            bar.close()
        return report

    def _flush_index(self) -> None:
        with self._lock:
            if self._defer_save == 2:
                self._defer_save = 0
                self._save_index()
                self._defer_save = 1

    # -- search ---------------------------------------------------------------------------
    def _rows(self, embeddings: np.ndarray) -> np.ndarray:
        """``embeddings`` as float32 (N, dim) rows, or GalleryError naming the shape."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        if emb.ndim != 2 or emb.shape[1] != self._dim:
            raise GalleryError(f"gallery {self.path} holds {self._dim}-d templates of "
                               f"{self.recognizer_name}; expected ({self._dim},) or "
                               f"(N, {self._dim}) embeddings, got shape {emb.shape}")
        return emb

    def search_embeddings(self, embeddings: np.ndarray, k: int = 5, *,
                          bare: np.ndarray | Sequence[bool] | None = None
                          ) -> list[list[FaceMatch]]:
        """The top-``k`` identities of each embedding (N, dim), best first. ``bare`` (one flag
        per embedding) marks faces without a mask, which are matched against photo templates
        only, never against synthetic masked variants (see :meth:`search_codes`)."""
        codes, scores = self.search_codes(embeddings, k, bare=bare)
        return [[FaceMatch(self._names[c], float(s)) for c, s in zip(row_c, row_s, strict=True)
                 if c >= 0] for row_c, row_s in zip(codes, scores, strict=True)]

    def search_codes(self, embeddings: np.ndarray, k: int = 5, *,
                     bare: np.ndarray | Sequence[bool] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(identity codes, scores), each (N, k), best first; code -1 where fewer than k
        identities exist. Codes index :attr:`identity_names` (fast path for benchmarks).

        Mask-aware enrolment adds masked variants so that a masked probe meets a masked
        template; a bare face gains nothing from them and risks resembling another person's
        masked variant more than its own photo, so rows flagged in ``bare`` skip them."""
        emb = self._rows(embeddings)
        if k < 1:
            raise GalleryError(f"k must be at least 1, got {k}")
        skip = (np.zeros(len(emb), bool) if bare is None
                else np.broadcast_to(np.asarray(bare, bool), (len(emb),)))
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.maximum(norms, np.float32(1e-12))  # scores are cosines
        with self._lock:
            self._refresh()
            n = len(self._ids)
            codes = np.full((len(emb), k), -1, np.int64)
            scores = np.full((len(emb), k), -1.0, np.float32)
            if n == 0 or not len(emb):
                return codes, scores
            # Enough templates to hold k identities however many templates each one has,
            # widened only for probes that still see fewer than k identities.
            kt = min(n, k * max(1, self._max_per_identity), max(k, 256))
            todo = np.arange(len(emb))
            while len(todo):
                t_scores, t_ids = self._index.search(emb[todo], kt)
                short = []
                for row, q in enumerate(todo):
                    got = self._aggregate(t_scores[row], t_ids[row], k, skip[q])
                    codes[q, :len(got[0])], scores[q, :len(got[0])] = got
                    if len(got[0]) < k and kt < n and (t_ids[row] >= 0).all():
                        short.append(q)
                todo = np.array(short, dtype=np.int64)
                kt = min(n, kt * 4)
            return codes, scores

    def _aggregate(self, t_scores: np.ndarray, t_ids: np.ndarray, k: int,
                   skip_synthetic: bool = False) -> tuple[np.ndarray, np.ndarray]:
        ok = t_ids >= 0
        t_ids, t_scores = t_ids[ok], t_scores[ok]
        pos = np.searchsorted(self._ids, t_ids)
        pos = np.minimum(pos, len(self._ids) - 1)
        live = self._ids[pos] == t_ids
        if skip_synthetic:
            live &= ~self._synthetic[pos]
        c = self._codes[pos[live]]
        s = t_scores[live]
        # hits come best first: an identity's first hit is its best template's score
        _, first = np.unique(c, return_index=True)
        first.sort()
        return c[first][:k], s[first][:k]

    @property
    def identity_names(self) -> list[str]:
        """Identity names in code order (see :meth:`search_codes`); may include identities
        removed since the gallery was opened (they are never returned by a search)."""
        return list(self._names)

    def decide(self, matches: list[FaceMatch], masked: bool = False) -> tuple[str, float]:
        """(identity or "unknown", best score) under the threshold of bare (or masked)
        faces."""
        if not matches:
            return UNKNOWN, -1.0
        best = matches[0]
        return ((best.identity if best.score >= self.threshold_for(masked) else UNKNOWN),
                best.score)

    def search_faces(self, image: np.ndarray, faces: Sequence, k: int = 5) -> list[SearchResult]:
        """:meth:`search` on faces already located (e.g. tracked in a video)."""
        image = as_image(image)
        emb, prob = self.embed_faces(image, faces)
        results = []
        matches_all = self.search_embeddings(emb, k, bare=prob < 0.5)
        for face, matches, p in zip(faces, matches_all, prob, strict=True):
            identity, score = self.decide(matches, masked=bool(p >= 0.5))
            results.append(SearchResult(np.asarray(face.box, np.float64),
                                        np.asarray(face.landmarks, np.float64), matches,
                                        identity, score, bool(p >= 0.5), float(p),
                                        float(face.score)))
        return results

    def search(self, image: np.ndarray | str | os.PathLike[str], k: int = 5) -> list[SearchResult]:
        """Every face of a photo, largest first, with its top-``k`` identities and the
        decision against :attr:`threshold`."""
        image = as_image(image)
        return self.search_faces(image, self._locate(image), k)

    # -- threshold from data --------------------------------------------------------------
    def calibrate(self, nonmated: np.ndarray | Sequence, fpir: float = 0.01, *,
                  apply: bool = True, masked: bool = False) -> Calibration:
        """Set the threshold for a false-positive identification rate ``fpir``.

        ``nonmated`` is either the top scores of non-mated searches (1-D numbers), or photos
        (paths or arrays) of people who are not enrolled: each is searched (its largest face)
        as :meth:`search` would and its best score taken. The threshold is the lowest with at
        most ``fpir`` of them accepted. ``masked`` sets the threshold of masked faces
        instead; photos are then given a mask first (one of the gallery's mask-aware styles
        each, seeded), as strangers at a door in masks. ``apply=False`` measures without
        changing the gallery."""
        if not 0 <= fpir < 1:
            raise GalleryError(f"FPIR must be in [0, 1), got {fpir}")
        skipped: list[tuple[str, str]] = []
        if isinstance(nonmated, np.ndarray) and nonmated.dtype.kind in "fi" and (
                nonmated.ndim == 1):
            scores = nonmated.astype(np.float64)
        elif (isinstance(nonmated, Sequence) and not isinstance(nonmated, str) and nonmated
              and all(isinstance(v, (int, float, np.floating, np.integer)) for v in nonmated)):
            scores = np.asarray(nonmated, dtype=np.float64)
        else:
            if isinstance(nonmated, (str, os.PathLike)):
                from maskface.imageio import iter_images

                nonmated = list(iter_images(nonmated))
            values = []
            for i, item in enumerate(nonmated):
                source = (os.fspath(item) if isinstance(item, (str, os.PathLike))
                          else f"array[{i}]")
                try:
                    image = as_image(item)
                except (ImageReadError, GalleryError) as e:
                    skipped.append((source, str(e)))
                    continue
                if masked:
                    # every style in turn, then the next renderer
                    n = len(DEFAULT_MASK_STYLES)
                    drawn = masked_variants(
                        image, (DEFAULT_MASK_STYLES[i % n],),
                        (DEFAULT_RENDERERS[i // n % len(DEFAULT_RENDERERS)],), 0, source)
                    if not drawn:
                        skipped.append((source, "no mask could be drawn"))
                        continue
                    image = drawn[0][1]
                faces = self._locate(image)
                if not faces:
                    skipped.append((source, "no face found"))
                    continue
                emb, prob = self.embed_faces(image, faces[:1])
                values.append(float(self.search_codes(emb, 1, bare=prob < 0.5)[1][0, 0]))
            scores = np.asarray(values, dtype=np.float64)
        if not len(scores):
            raise GalleryError("no non-mated probe could be scored"
                               + (f" (first problem: {skipped[0][1]})" if skipped else ""))
        if not np.isfinite(scores).all():
            raise GalleryError("non-mated scores must be finite")
        t = threshold_at_fpir(scores, fpir)
        fp = int((scores >= t).sum())
        cal = Calibration(t, fpir, fp / len(scores), len(scores), fp, skipped)
        if apply:
            self.set_threshold(t, f"calibrated for FPIR {100 * fpir:.3g}% on {len(scores)} "
                                  f"{'masked ' * masked}non-mated probes", masked=masked)
        return cal

    # -- housekeeping ---------------------------------------------------------------------
    @staticmethod
    def delete(path: str | os.PathLike[str]) -> None:
        """Delete the gallery folder ``path`` (only if it is one)."""
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise GalleryError(f"{path} is not a gallery; not deleting it")
        shutil.rmtree(path)


def _index_options(kind: str, options: dict | None) -> dict:
    return index_options(kind, options)


def _recognizer_name(name: str) -> str:
    """The registry's canonical spelling of a recognizer name."""
    from maskface.recognizers import RECOGNIZERS

    try:
        return RECOGNIZERS.resolve(name)
    except MaskfaceError as e:
        raise GalleryError(str(e)) from None
