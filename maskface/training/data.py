"""Training chips: each source face cut as evaluation cuts it, bare and masked K ways, on disk.

Rendering and detection cost far more than a training step, so they run once. A chip store
is a folder:

- ``sources.csv``: one row per source image (path, identity or blank, split ``train``/``val``).
- ``chips.npy``: (N, 1 + K, S, S, 3) uint8, memory-mapped. Slot 0 is the bare face; slots
  1..K are masked variants (random style, look, wear and renderer per variant).
- ``ok.npy``: (N, 1 + K) bool, whether the slot holds a usable chip.
- ``teacher.npy``: (N, S, S, 3) uint8, only when the chips are not cut as dlib cuts them
  (``--alignment dlib150-upper``): the bare face as the teacher was trained to see it, so
  the distillation targets do not change with the student's alignment.
- ``store.json``: the settings; a store is only reused with the same settings.
- ``done/``: a file per finished shard, holding what was drawn in its masked slots (style,
  renderer, wear; JSON lines), so a killed preparation resumes where it stopped.

Every chip is cut the way :func:`maskface.evaluation.embeddings.embed_paths` cuts it at test
time: the detector runs on the image as given (the masked image for masked slots), and when it
finds nothing the centre-box fallback is used, so training sees what evaluation sees. Each
source's random draws depend only on the seed and the source's row, so the same settings give
the same bytes with any number of workers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from maskface.atomic import atomic_writer, write_bytes_atomic, write_json_atomic
from maskface.errors import MaskfaceError
from maskface.parallel import ordered_map

STORE_VERSION = 1
SPLITS = ("train", "val")
# How masks are worn in training: mostly as meant, sometimes the ways people really wear them.
WEAR_WEIGHTS = {"correct": 0.75, "under_nose": 0.2, "chin": 0.05}
_SHARD = 48  # sources a worker takes at a time
TEACHER_ALIGNMENT = "dlib150"  # how the frozen teacher (dlib's ResNet) cuts its chips


class TrainingDataError(MaskfaceError, ValueError):
    """Training data cannot be built or used: no sources, a store of other settings, ..."""


@dataclass(frozen=True)
class Source:
    """One training image: its file, its person (None when unknown) and its split."""

    path: str
    identity: str | None
    split: str = "train"


@dataclass(frozen=True)
class ChipSettings:
    """What shapes a store's chips; a store is reused only when these match."""

    variants: int = 3
    renderers: tuple[str, ...] = ("2d",)
    styles: tuple[str, ...] = ()  # empty: every registered style
    detector: str = "blazeface"
    alignment: str = "dlib150"
    size: int = 150
    padding: float = 0.25
    seed: int = 0
    # Masked images pass through JPEG at a random quality in this range before detection,
    # as a masked copy on disk does.
    jpeg_quality: tuple[int, int] = (75, 95)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["renderers"], d["styles"] = list(self.renderers), list(self.styles)
        d["jpeg_quality"] = list(self.jpeg_quality)
        return d


@dataclass
class ChipStore:
    """An opened chip store (see the module docstring)."""

    root: Path
    sources: list[Source]
    settings: ChipSettings
    chips: np.ndarray  # memmap (N, 1 + K, S, S, 3)
    ok: np.ndarray  # (N, 1 + K) bool
    failures: list[tuple[str, str]] = field(default_factory=list)
    teacher_chips: np.ndarray | None = None  # memmap (N, S, S, 3), see the module docstring

    def teacher_chip_rows(self, rows: np.ndarray) -> np.ndarray:
        """The bare chips of ``rows`` as the teacher cuts them."""
        if self.teacher_chips is None:
            return np.asarray(self.chips[rows, 0])
        return np.asarray(self.teacher_chips[rows])

    @property
    def variants(self) -> int:
        return self.settings.variants

    def indices(self, split: str) -> np.ndarray:
        """Rows of the sources in ``split`` whose bare chip is usable."""
        return np.array([i for i, s in enumerate(self.sources)
                         if s.split == split and self.ok[i, 0]], dtype=np.int64)

    def identities(self, rows: np.ndarray) -> np.ndarray:
        """Integer identity labels for ``rows`` (-1 where unknown), numbered in row order."""
        names: dict[str, int] = {}
        out = np.full(len(rows), -1, np.int64)
        for j, i in enumerate(rows):
            name = self.sources[i].identity
            if name is not None:
                out[j] = names.setdefault(name, len(names))
        return out

    def fingerprint(self) -> str:
        """A digest of the settings and the source list (names the teacher embedding file)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(json.dumps(self.settings.as_dict(), sort_keys=True).encode())
        for s in self.sources:
            h.update(f"{s.path}\0{s.identity}\0{s.split}\n".encode())
        return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Sources


def dataset_sources(name: str, root: str | os.PathLike[str], *, labelled: bool = True,
                    exclude_people: set[str] | frozenset[str] = frozenset(),
                    limit: int | None = None, sample: int | None = None,
                    seed: int = 0) -> list[Source]:
    """Images of a dataset adapter as sources (all in ``train``; see :func:`split_people`).

    ``labelled=False`` drops the identities (distillation needs none). People in
    ``exclude_people`` (for example the people of a test protocol) are left out. ``sample``
    keeps a seeded random subset of that many images; ``limit`` the first ones.
    """
    from maskface.datasets import load_dataset

    ds = load_dataset(name, root)
    out = [Source(str(s.path), s.identity if labelled else None) for s in ds.samples
           if s.identity is None or s.identity not in exclude_people]
    out.sort(key=lambda s: s.path)
    if sample is not None and sample < len(out):
        keep = np.random.default_rng([seed, 11]).choice(len(out), sample, replace=False)
        out = [out[i] for i in sorted(keep)]
    return out[:limit] if limit is not None else out


def gather_sources(data: Sequence[tuple[str, str]], *, exclude_people: set[str] = frozenset(),
                   val_fraction: float = 0.1, seed: int = 0, limit: int | None = None,
                   max_images: dict[str, int] | None = None) -> list[Source]:
    """Sources of several ``(adapter name, root)`` datasets, people in ``exclude_people``
    left out, a person-disjoint ``val_fraction`` of the labelled people moved to ``val``.

    Identities are prefixed with the dataset's name, so two datasets never share a person
    by accident of naming. ``max_images`` caps a dataset (by name) at a seeded random
    subset; ``limit`` keeps the first images of each dataset (for tests).
    """
    sources: list[Source] = []
    for name, root in data:
        part = dataset_sources(name, root, exclude_people=exclude_people, limit=limit,
                               sample=(max_images or {}).get(name), seed=seed)
        sources += [Source(s.path, None if s.identity is None else f"{name}/{s.identity}")
                    for s in part]
    return split_people(sources, val_fraction, seed)


def split_people(sources: Sequence[Source], val_fraction: float, seed: int = 0,
                 min_images: int = 2) -> list[Source]:
    """Move a person-disjoint ``val_fraction`` of the labelled people into ``val``.

    Only people with ``min_images`` or more images can give same-person validation pairs, so
    the validation people are drawn among them; unlabelled sources stay in ``train``.
    """
    counts: dict[str, int] = {}
    for s in sources:
        if s.identity is not None:
            counts[s.identity] = counts.get(s.identity, 0) + 1
    eligible = sorted(p for p, n in counts.items() if n >= min_images)
    n_val = round(val_fraction * len(counts))
    rng = np.random.default_rng(seed)
    chosen = set(rng.permutation(eligible)[: min(n_val, len(eligible))].tolist())
    return [Source(s.path, s.identity, "val" if s.identity in chosen else "train")
            for s in sources]


# ---------------------------------------------------------------------------------------------
# Worker side


@cache
def _analyser():
    from maskface.geometry.analysers import create_analyser

    return create_analyser("mediapipe")


def _same_face(faces: list, landmarks: np.ndarray):
    """The analysed face the recognition landmarks belong to (nearest box centre)."""
    centre = landmarks.mean(axis=0)
    dist = [float(np.sum(((f.box[:2] + f.box[2:]) / 2 - centre) ** 2)) for f in faces]
    return faces[int(np.argmin(dist))]


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1] if ok else image


def _locate_chip(image: np.ndarray, s: ChipSettings) -> tuple[np.ndarray, np.ndarray]:
    """(chip, 68 landmarks) as evaluation cuts them, centre-box fallback included."""
    from maskface.evaluation.embeddings import center_landmarks, locate
    from maskface.recognizers.templates import align_chip

    found = locate(image, s.detector)
    if found is None:
        found = center_landmarks(image)
    return align_chip(image, found, s.alignment, s.size, s.padding), found


def _own_teacher_chips(s: ChipSettings) -> bool:
    return s.alignment != TEACHER_ALIGNMENT


def source_chips(path: str, row: int, s: ChipSettings
                 ) -> tuple[np.ndarray, np.ndarray, list[dict], str, np.ndarray | None]:
    """Chips (1 + K, S, S, 3), ok flags, per-variant records, an error ('' if none) and the
    bare chip as the teacher cuts it (``None`` when the chips are cut that way already)."""
    from maskface.errors import ImageReadError
    from maskface.imageio import read_image
    from maskface.recognizers.templates import align_chip
    from maskface.styles import list_styles
    from maskface.styles.registry import style_class
    from maskface.synthesis import mask_image

    k = s.variants
    chips = np.zeros((1 + k, s.size, s.size, 3), np.uint8)
    ok = np.zeros(1 + k, bool)
    records: list[dict] = [{} for _ in range(k)]
    teacher = np.zeros((s.size, s.size, 3), np.uint8) if _own_teacher_chips(s) else None
    try:
        image = read_image(path)
    except (ImageReadError, OSError) as e:
        return chips, ok, records, f"unreadable: {e}", teacher
    chips[0], landmarks = _locate_chip(image, s)
    ok[0] = True
    if teacher is not None:
        teacher = align_chip(image, landmarks, TEACHER_ALIGNMENT, s.size, s.padding)
    faces = _analyser()(image)
    if not faces:
        return chips, ok, records, "no face for the mask renderer", teacher
    face = _same_face(faces, landmarks)
    rng = np.random.default_rng([s.seed, row])
    # Every style that can be drawn at random (not those that need the user's files).
    styles = list(s.styles) or [n for n in list_styles() if style_class(n).weight > 0]
    wear_names, wear_p = zip(*WEAR_WEIGHTS.items(), strict=True)
    for v in range(k):
        style = styles[int(rng.integers(len(styles)))]
        renderer = s.renderers[int(rng.integers(len(s.renderers)))]
        wear = wear_names[int(rng.choice(len(wear_names), p=np.array(wear_p) / sum(wear_p)))]
        quality = int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1))
        result = mask_image(image, style, wear=wear, faces=[face], renderer=renderer,
                            seed=rng, vary=True)
        if not result.faces:
            continue
        masked = _jpeg(result.image, quality)
        chip, found = _locate_chip(masked, s)
        # The located face must be the masked one: a mask over its lower half.
        x0, y0 = found.min(axis=0)
        x1, y1 = found.max(axis=0)
        lower = result.alpha[int(max(0, (y0 + y1) / 2)):int(max(0, y1)),
                             int(max(0, x0)):int(max(0, x1))]
        if lower.size == 0 or float((lower > 0).mean()) < 0.2:
            continue
        chips[1 + v], ok[1 + v] = chip, True
        records[v] = {"style": result.faces[0]["style"], "renderer": renderer, "wear": wear}
    return chips, ok, records, "", teacher


def _shard(task: tuple[list[tuple[int, str]], ChipSettings]) -> list:
    rows, settings = task
    return [(row, *source_chips(path, row, settings)) for row, path in rows]


# ---------------------------------------------------------------------------------------------
# The store


def _write_sources(path: Path, sources: Sequence[Source]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "identity", "split"])
    for s in sources:
        w.writerow([s.path, "" if s.identity is None else s.identity, s.split])
    write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def _read_sources(path: Path) -> list[Source]:
    with open(path, newline="", encoding="utf-8") as f:
        return [Source(r["path"], r["identity"] or None, r["split"]) for r in csv.DictReader(f)]


def _shards(n: int) -> Iterator[tuple[int, range]]:
    for k, start in enumerate(range(0, n, _SHARD)):
        yield k, range(start, min(n, start + _SHARD))


def prepare_store(sources: Sequence[Source], root: str | os.PathLike[str],
                  settings: ChipSettings | None = None, *, workers: int | None = None,
                  progress: bool = False) -> ChipStore:
    """Build (or finish, after a kill) the chip store of ``sources`` in ``root``.

    An existing store is reused when its settings and sources are the same; otherwise
    :class:`TrainingDataError` says so (use another folder).
    """
    settings = settings or ChipSettings()
    sources = list(sources)
    if not sources:
        raise TrainingDataError("no training images: check the data folders and exclusions")
    bad = {s.split for s in sources} - set(SPLITS)
    if bad:
        raise TrainingDataError(f"unknown split(s) {sorted(bad)}; use {SPLITS}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta_path, n, k = root / "store.json", len(sources), settings.variants
    wanted = {"version": STORE_VERSION, "settings": settings.as_dict(), "sources": n}
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        same = {key: meta.get(key) for key in wanted} == wanted
        if not same or _read_sources(root / "sources.csv") != sources:
            raise TrainingDataError(
                f"{root} holds chips made with other settings or images; choose a new "
                "--chips folder (or delete this one)")
    else:
        _write_sources(root / "sources.csv", sources)
        np.lib.format.open_memmap(root / "chips.npy", "w+", np.uint8,
                                  (n, 1 + k, settings.size, settings.size, 3)).flush()
        np.save(root / "ok.npy", np.zeros((n, 1 + k), bool))
        if _own_teacher_chips(settings):
            np.lib.format.open_memmap(root / "teacher.npy", "w+", np.uint8,
                                      (n, settings.size, settings.size, 3)).flush()
        write_json_atomic(meta_path, {**wanted, "failures": []})
    done_dir = root / "done"
    done_dir.mkdir(exist_ok=True)
    todo = [(key, rows) for key, rows in _shards(n) if not (done_dir / f"{key}").exists()]
    if todo:
        _fill(root, sources, settings, todo, workers or os.cpu_count() or 1, progress)
    return open_store(root)


def _fill(root: Path, sources: Sequence[Source], settings: ChipSettings,
          todo: list[tuple[int, range]], workers: int, progress: bool) -> None:
    chips = np.load(root / "chips.npy", mmap_mode="r+")
    teacher = (np.load(root / "teacher.npy", mmap_mode="r+") if _own_teacher_chips(settings)
               else None)
    ok = np.load(root / "ok.npy")
    meta = json.loads((root / "store.json").read_text())
    failures = {path: why for path, why in meta.get("failures", [])}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(r) for _, r in todo), unit="face", desc="chips",
                   smoothing=0.05)
    tasks = [([(i, sources[i].path) for i in rows], settings) for _, rows in todo]

    t0 = time.perf_counter()
    # Niced less than evaluation's workers: here the parent only writes results.
    results = ordered_map(_shard, tasks, workers, window=2 * workers, nice=5)
    for (key, _), out in zip(todo, results, strict=True):
        lines = []
        for row, c, flags, records, error, bare_teacher in out:
            chips[row], ok[row] = c, flags
            if teacher is not None:
                teacher[row] = bare_teacher
            if error:
                failures[sources[row].path] = error
            lines += [json.dumps({"row": row, "slot": 1 + v, **r}) for v, r in
                      enumerate(records) if r]
        chips.flush()
        if teacher is not None:
            teacher.flush()
        # ok.npy is rewritten whole, then the shard's marker (holding its variant records)
        # is written: a kill at any point leaves at worst a shard that is computed again.
        with atomic_writer(root / "ok.npy") as f:
            np.save(f, ok)
        meta["failures"] = sorted(failures.items())
        write_json_atomic(root / "store.json", meta)
        write_bytes_atomic(root / "done" / f"{key}", "".join(
            line + "\n" for line in lines).encode("utf-8"))
        if bar is not None:
            bar.update(len(out))
    if bar is not None:
        bar.close()
    meta["seconds"] = round(meta.get("seconds", 0.0) + time.perf_counter() - t0, 1)
    write_json_atomic(root / "store.json", meta)


def open_store(root: str | os.PathLike[str]) -> ChipStore:
    """Open a finished chip store read-only."""
    root = Path(root)
    try:
        meta = json.loads((root / "store.json").read_text())
    except FileNotFoundError:
        raise TrainingDataError(f"{root} is not a chip store (no store.json)") from None
    sources = _read_sources(root / "sources.csv")
    n_shards = sum(1 for _ in _shards(len(sources)))
    missing = [k for k in range(n_shards) if not (root / "done" / f"{k}").exists()]
    if missing:
        raise TrainingDataError(f"{root} is unfinished ({len(missing)} of {n_shards} shards "
                                "left); run the same command again to finish it")
    s = dict(meta["settings"])
    settings = ChipSettings(**{**s, "renderers": tuple(s["renderers"]),
                               "styles": tuple(s["styles"]),
                               "jpeg_quality": tuple(s["jpeg_quality"])})
    teacher = root / "teacher.npy"
    return ChipStore(root, sources, settings, np.load(root / "chips.npy", mmap_mode="r"),
                     np.load(root / "ok.npy"), [tuple(f) for f in meta.get("failures", [])],
                     np.load(teacher, mmap_mode="r") if teacher.exists() else None)


def teacher_embeddings(store: ChipStore, recognizer=None, *, progress: bool = False
                       ) -> np.ndarray:
    """The teacher's unit embeddings (N, 2, D) of every bare chip and its mirror image,
    cached beside the store.

    The teacher is the model being fine-tuned, frozen (``dlib-resnet`` by default); the
    student learns to give a masked face the embedding the teacher gives it bare. The mirror
    image's embedding is the target of a mirrored chip.
    """
    from maskface.recognizers import create_recognizer

    rec = recognizer or create_recognizer("dlib-resnet")
    path = store.root / f"teacher-{rec.name}{rec.cache_id}-{store.fingerprint()}.npy"
    if path.exists():
        return np.load(path)
    out = np.zeros((len(store.sources), 2, rec.dim), np.float32)
    rows = np.flatnonzero(store.ok[:, 0])
    step = 256
    it = range(0, len(rows), step)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="teacher embeddings", unit="batch")
    for start in it:
        part = rows[start : start + step]
        chips = store.teacher_chip_rows(part)
        out[part, 0] = rec.embed_chips(chips)
        out[part, 1] = rec.embed_chips(np.ascontiguousarray(chips[:, :, ::-1]))
    with atomic_writer(path) as f:
        np.save(f, out)
    return out
