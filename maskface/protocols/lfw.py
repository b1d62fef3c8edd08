"""LFW View 2 (10 folds of 300 same + 300 different pairs) and View 1 (DevTrain/DevTest).

The pairs come from the official files, in their order, with their folds; View 1's train and
test files become folds 0 and 1 of one protocol (``source_line`` and the fold tell them
apart). Lines of the official files that name a missing image are reported, as are pairs
whose masked image is missing. The seed only picks among masked variants.
"""

from __future__ import annotations

from maskface.datasets.base import DatasetError, Problem
from maskface.datasets.lfw import LfwDataset
from maskface.datasets.pairs import PairList
from maskface.protocols.base import PairRow, Protocol, configurations
from maskface.protocols.masked import MaskedCopy

VIEWS: dict[str, tuple[str, ...]] = {
    "lfw-view2": ("view2",),
    "lfw-view1": ("view1-train", "view1-test"),
}


def lfw_protocols(
    dataset: LfwDataset, kind: str = "lfw-view2", *, masked: MaskedCopy | None = None,
    seed: int = 0, strict: bool = False,
) -> list[Protocol]:
    """The configurations of ``kind`` (``lfw-view2`` or ``lfw-view1``) for ``dataset``."""
    if kind not in VIEWS:
        raise DatasetError(f"Unknown LFW protocol {kind!r}; choose from {', '.join(VIEWS)}.")
    rows: list[PairRow] = []
    problems: list[Problem] = []
    sources = []
    for offset, view in enumerate(VIEWS[kind]):
        pairs: PairList = dataset.pairs(view, strict=strict)
        sources.append(pairs.file.name)
        problems.extend(pairs.problems)
        for p in pairs.pairs:
            rows.append(PairRow(
                pair=len(rows), fold=p.fold + offset, same=p.same,
                a=dataset.relpath(p.a), b=dataset.relpath(p.b),
                identity_a=p.a.identity or "", identity_b=p.b.identity or "",
                source_line=p.line,
            ))
    return configurations(kind, rows, masked, seed=seed, source="+".join(sources),
                          base_problems=problems)
