"""Seeded train/validation/test splits: random, or uniform (stratified per class), as CSV."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARTS: tuple[str, ...] = ("train", "val", "test")
SPLIT_KINDS: tuple[str, ...] = ("random", "uniform")


@dataclass(frozen=True)
class Split:
    """Row indices of the train, validation and test parts; ``kind`` is random or uniform."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    kind: str = "random"
    seed: int = 0

    def part(self, name: str) -> np.ndarray:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def sizes(self) -> dict[str, int]:
        return {name: len(self.part(name)) for name in PARTS}


def _cut(indices: np.ndarray, fractions: Sequence[float]) -> list[np.ndarray]:
    bounds = np.round(np.cumsum(fractions)[:-1] * len(indices)).astype(int)
    return np.split(indices, bounds)


def make_split(
    labels: np.ndarray | Sequence,
    kind: str = "random",
    *,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> Split:
    """Split rows 0..N-1 into train/val/test with the given ``fractions``, seeded.

    ``uniform`` cuts every class of ``labels`` in the same proportions, so each class is
    represented in every part as in the whole (classes with fewer than 3 rows cannot be);
    ``random`` ignores the labels. Pass age groups, not ages, to stratify an age target.
    """
    if kind not in SPLIT_KINDS:
        raise ValueError(f"unknown split kind {kind!r}; choose from {', '.join(SPLIT_KINDS)}")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"need three non-negative fractions summing to 1, got {fractions}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if kind == "random":
        parts = _cut(rng.permutation(len(labels)), fractions)
    else:
        pieces: list[list[np.ndarray]] = [[], [], []]
        for value in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == value))
            for piece, cut in zip(pieces, _cut(members, fractions), strict=True):
                piece.append(cut)
        # Shuffle within each part so that rows are not grouped by class.
        parts = [rng.permutation(np.concatenate(p)) for p in pieces]
    return Split(*(np.sort(p) for p in parts), kind=kind, seed=seed)


def save_split(split: Split, path: str | os.PathLike[str], names: Sequence[str]) -> Path:
    """Write ``index,name,part`` rows (with ``kind``/``seed`` in a header comment) to CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted((int(i), part) for part in PARTS for i in split.part(part))
    with open(path, "w", newline="") as fh:
        fh.write(f"# kind={split.kind} seed={split.seed}\n")
        writer = csv.writer(fh)
        writer.writerow(["index", "name", "part"])
        writer.writerows([i, names[i], part] for i, part in rows)
    return path


def load_split(path: str | os.PathLike[str]) -> tuple[Split, list[str]]:
    """Read a split written by :func:`save_split`; returns it and the row names."""
    with open(path, newline="") as fh:
        header = dict(item.split("=", 1) for item in fh.readline().lstrip("# ").split())
        rows = list(csv.DictReader(fh))
    names = [r["name"] for r in rows]
    parts = {p: np.array([int(r["index"]) for r in rows if r["part"] == p], dtype=np.int64)
             for p in PARTS}
    split = Split(parts["train"], parts["val"], parts["test"],
                  kind=header.get("kind", "random"), seed=int(header.get("seed", 0)))
    return split, names
