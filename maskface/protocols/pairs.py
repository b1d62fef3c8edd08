"""Same/different pair lists for any dataset with identities, drawn with a seed.

Same pairs: an identity drawn uniformly among those with two or more images, then two distinct
images of it. Different pairs: two distinct identities drawn uniformly, then one image of each.
Pairs are unique (unordered) and dealt round-robin into ``folds`` folds, so every fold has
``same // folds`` (+1) same and ``different // folds`` (+1) different pairs; rows list each
fold's same pairs, then its different pairs, like LFW's ``pairs.txt``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from maskface.datasets.base import Dataset, DatasetError, Sample
from maskface.protocols.base import PairRow, Protocol, configurations
from maskface.protocols.masked import MaskedCopy

KIND = "pairs"
# Draws allowed per wanted pair before concluding the dataset is too small for the request.
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

    genuine = _unique(draw_same, same, "same", dataset.name)
    impostor = _unique(draw_different, different, "different", dataset.name)
    rows: list[PairRow] = []
    for fold in range(folds):
        for pairs, is_same in ((genuine[fold::folds], True), (impostor[fold::folds], False)):
            for a, b in pairs:
                rows.append(PairRow(pair=len(rows), fold=fold, same=is_same,
                                    a=dataset.relpath(a), b=dataset.relpath(b),
                                    identity_a=a.identity or "", identity_b=b.identity or ""))
    return configurations(KIND, rows, masked, seed=seed, source=dataset.name)


def _unique(
    draw: Callable[[], tuple[Sample, Sample]], count: int, what: str, name: str
) -> list[tuple[Sample, Sample]]:
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
        raise DatasetError(
            f"Could only draw {len(pairs)} distinct {what} pairs of the {count} asked from {name}."
        )
    return pairs
