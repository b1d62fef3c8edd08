"""Same/different pair lists for any dataset with identities, drawn with a seed.

Same pairs: an identity drawn uniformly among those with two or more images, then two distinct
images of it. Different pairs: two distinct identities drawn uniformly, then one image of each.
Pairs are unique (unordered) and dealt round-robin into ``folds`` folds, so every fold has
``same // folds`` (+1) same and ``different // folds`` (+1) different pairs; rows list each
fold's same pairs, then its different pairs, like LFW's ``pairs.txt``.

A small dataset may hold fewer distinct pairs than asked (MFR2: 53 people, 269 images). Then
every distinct pair of that kind is drawn and the protocol's notes say how many were asked
and drawn; only a dataset with no same (or no different) pair at all is an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from maskface.datasets.base import Dataset, DatasetError, Sample
from maskface.protocols.base import PairRow, Protocol, configurations
from maskface.protocols.masked import MaskedCopy

KIND = "pairs"
# Draws allowed per wanted pair before the rest is picked from the pairs not drawn yet.
_ATTEMPTS = 50


def identity_pairs(
    dataset: Dataset, *, same: int = 3000, different: int = 3000, folds: int = 10,
    masked: MaskedCopy | None = None, seed: int = 0,
) -> list[Protocol]:
    """``same`` genuine and ``different`` impostor pairs of ``dataset`` in every configuration."""
    if same < 0 or different < 0 or folds < 1:
        raise DatasetError("same and different must be >= 0 and folds >= 1.")
    by_identity = dataset.by_identity()
    names = list(by_identity)
    multi = [n for n in names if len(by_identity[n]) >= 2]
    if (same and not multi) or (different and len(names) < 2):
        raise DatasetError(
            f"{dataset.name} has {len(names)} identities ({len(multi)} with two images or more): "
            "too few for same/different pairs."
        )
    rng = np.random.default_rng(seed)

    def draw_same() -> tuple[Sample, Sample]:
        group = by_identity[multi[int(rng.integers(len(multi)))]]
        i, j = rng.choice(len(group), size=2, replace=False)
        return group[i], group[j]

    def draw_different() -> tuple[Sample, Sample]:
        i, j = rng.choice(len(names), size=2, replace=False)
        a, b = by_identity[names[i]], by_identity[names[j]]
        return a[int(rng.integers(len(a)))], b[int(rng.integers(len(b)))]

    sizes = [len(by_identity[n]) for n in names]
    available = {"same": sum(n * (n - 1) // 2 for n in sizes),
                 "different": (sum(sizes) ** 2 - sum(n * n for n in sizes)) // 2}
    notes = []
    for what, asked in (("same", same), ("different", different)):
        if asked > available[what]:
            notes.append(f"asked for {asked} {what} pairs; {dataset.name} has only "
                         f"{available[what]} distinct ones: drew them all")
    same, different = min(same, available["same"]), min(different, available["different"])

    def all_same() -> list[tuple[Sample, Sample]]:
        return [(g[i], g[j]) for g in (by_identity[n] for n in multi)
                for i in range(len(g)) for j in range(i + 1, len(g))]

    def all_different() -> list[tuple[Sample, Sample]]:
        return [(a, b) for i, x in enumerate(names) for y in names[i + 1 :]
                for a in by_identity[x] for b in by_identity[y]]

    genuine = (all_same() if same == available["same"]
               else _unique(draw_same, all_same, same, rng))
    impostor = (all_different() if different == available["different"]
                else _unique(draw_different, all_different, different, rng))
    rows: list[PairRow] = []
    for fold in range(folds):
        for pairs, is_same in ((genuine[fold::folds], True), (impostor[fold::folds], False)):
            for a, b in pairs:
                rows.append(PairRow(pair=len(rows), fold=fold, same=is_same,
                                    a=dataset.relpath(a), b=dataset.relpath(b),
                                    identity_a=a.identity or "", identity_b=b.identity or ""))
    return configurations(KIND, rows, masked, seed=seed, source=dataset.name, notes=notes)


Draw = Callable[[], tuple[Sample, Sample]]


def _unique(
    draw: Draw, everything: Callable[[], list[tuple[Sample, Sample]]], count: int,
    rng: np.random.Generator,
) -> list[tuple[Sample, Sample]]:
    """``count`` distinct (unordered) pairs: drawn one by one, then, when the draws keep
    repeating (``count`` is close to all there are), topped up from the pairs not yet drawn.

    ``count`` is at most the number of distinct pairs, so the top-up lists only a few more
    pairs than are wanted."""
    seen: set[frozenset[str]] = set()
    pairs: list[tuple[Sample, Sample]] = []
    for _ in range(count * _ATTEMPTS):
        if len(pairs) == count:
            break
        a, b = draw()
        key = frozenset((str(a.path), str(b.path)))
        if key not in seen:
            seen.add(key)
            pairs.append((a, b))
    if len(pairs) < count:
        rest = [(a, b) for a, b in everything()
                if frozenset((str(a.path), str(b.path))) not in seen]
        picked = rng.choice(len(rest), size=min(count - len(pairs), len(rest)), replace=False)
        pairs.extend(rest[int(i)] for i in sorted(picked))
    return pairs
