"""LFW View 2 (10 folds of 300 same + 300 different pairs) and View 1 (DevTrain/DevTest).

The pairs come from the official files, in their order, with their folds; View 1's train and
test files become folds 0 and 1 of one protocol (``source_line`` and the fold tell them
apart). Lines of the official files that name a missing image are reported, as are pairs
whose masked image is missing. The seed only picks among masked variants.

``folds`` keeps some folds only, numbered from 1 as in ``pairs.txt`` (View 1: 1 = DevTrain,
2 = DevTest): e.g. folds 6-10 to test a recognizer trained on the people of folds 1-5
(:func:`maskface.datasets.lfw.fold_people`). Kept rows keep their pair index and 0-based fold,
so they match the full protocol's rows; the kind is then named after the folds
(``lfw-view2-folds6-10``), so reports never pass a subset off as the whole benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable

from maskface.datasets.base import DatasetError
from maskface.datasets.lfw import LfwDataset, format_folds
from maskface.datasets.pairs import PairList
from maskface.protocols.base import Protocol, configurations, pair_rows
from maskface.protocols.masked import MaskedCopy

VIEWS: dict[str, tuple[str, ...]] = {
    "lfw-view2": ("view2",),
    "lfw-view1": ("view1-train", "view1-test"),
}


def lfw_protocols(
    dataset: LfwDataset, kind: str = "lfw-view2", *, masked: MaskedCopy | None = None,
    seed: int = 0, strict: bool = False, folds: str | int | Iterable[int] | None = None,
) -> list[Protocol]:
    """The configurations of ``kind`` (``lfw-view2`` or ``lfw-view1``) for ``dataset``.

    ``folds``: the 1-based folds to keep (``"6-10"``, ``"1,3,5-7"``, ints); all by default."""
    if kind not in VIEWS:
        raise DatasetError(f"Unknown LFW protocol {kind!r}; choose from {', '.join(VIEWS)}.")
    lists: list[PairList] = [dataset.pairs(view, strict=strict) for view in VIEWS[kind]]
    rows, problems, chosen = pair_rows(dataset, lists, folds)
    available = sum(pairs.folds for pairs in lists)  # View 2: 10; View 1: 1 + 1
    sources = [pairs.file.name for pairs in lists]
    name = kind if chosen is None or len(chosen) == available else (
        f"{kind}-folds{format_folds(chosen).replace(',', '+')}")
    return configurations(name, rows, masked, seed=seed, source="+".join(sources),
                          base_problems=problems)

