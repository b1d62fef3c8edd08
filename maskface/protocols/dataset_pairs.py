"""A dataset's own pairs file as a protocol, split by real mask labels where it has them.

LFW's ``pairs.txt`` gives the ``lfw-view2`` protocol. Other adapters with a pairs file (MFR2:
``pairs.txt``, 848 pairs, no folds) give ``<name>-pairs``, the file's pairs in its order.

Real masks. When the images carry a per-image mask label (MFR2's ``mfr2_labels.txt``: the
``mask`` attribute), the pairs are split by those labels into ``unmasked-unmasked``,
``masked-unmasked`` (side ``a`` is the masked image; the pair is turned round when needed)
and ``masked-masked``. Every image stays in the dataset's own folder: the protocol lists that
folder as both roots and ``a_side``/``b_side`` say which images wear a mask. A pair with an
image that has no label, or a label that says nothing (``unknown``), is left out and reported.
Configurations that end up with no pair are not written (a note says so). A masked copy
(``masked=``) gives the synthetic configurations instead, as for LFW.

Folds. A pairs file without folds (MFR2's) has its pairs dealt round-robin into ``deal``
folds, same and different pairs apart and in file order, in each configuration, so the
accuracy threshold is learnt on the other folds as in LFW's protocol. A file with folds keeps
them, and ``folds`` keeps some of them (1-based).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from maskface.datasets.base import Dataset, DatasetError, Problem
from maskface.datasets.lfw import LfwDataset, format_folds
from maskface.datasets.mfr2 import mask_state
from maskface.datasets.pairs import PairList
from maskface.protocols.base import PairRow, Protocol, configurations, pair_rows
from maskface.protocols.lfw import lfw_protocols
from maskface.protocols.masked import MaskedCopy

KIND = "pairs-file"
REAL_MASK_CONFIGURATIONS: tuple[str, ...] = (
    "unmasked-unmasked", "masked-unmasked", "masked-masked",
)
DEAL_FOLDS = 10


def has_pairs_file(dataset: Dataset) -> bool:
    """Whether ``dataset`` has a pairs file of its own (an adapter with ``pairs()``)."""
    return callable(getattr(dataset, "pairs", None))


def has_mask_labels(dataset: Dataset) -> bool:
    """Whether some image of ``dataset`` carries a mask label (the ``mask`` attribute)."""
    return any("mask" in s.attributes for s in dataset.samples)


def dataset_pairs(
    dataset: Dataset, *, masked: MaskedCopy | None = None, seed: int = 0,
    strict: bool = False, folds: str | int | Iterable[int] | None = None,
    labels: bool | None = None, deal: int = DEAL_FOLDS,
) -> list[Protocol]:
    """The protocol of ``dataset``'s own pairs file (see the module docstring).

    ``labels``: split by the images' mask labels (default: when there are labels and no
    ``masked`` copy). ``folds``: 1-based folds to keep, for files with folds. ``deal``: how
    many folds a file without folds is dealt into (1 keeps every pair in fold 0).
    """
    if isinstance(dataset, LfwDataset) and dataset.name == "lfw":
        return lfw_protocols(dataset, "lfw-view2", masked=masked, seed=seed, strict=strict,
                             folds=folds)
    if not has_pairs_file(dataset):
        raise DatasetError(
            f"{dataset.name} has no pairs file of its own; use the 'pairs' or "
            "'reference-probe' kind, which draw pairs from its identities."
        )
    if deal < 1:
        raise DatasetError(f"deal must be 1 or more folds, got {deal}.")
    labelled = has_mask_labels(dataset)
    if labels is None:
        labels = labelled and masked is None
    elif labels and not labelled:
        raise DatasetError(f"{dataset.name} at {dataset.root} has no per-image mask labels "
                           "to split the pairs by.")
    if labels and masked is not None:
        raise DatasetError("Split the pairs by the images' own mask labels or by a masked copy, "
                           "not both.")
    pairs: PairList = dataset.pairs(strict=strict)  # type: ignore[attr-defined]
    if folds is not None and pairs.folds == 1:
        raise DatasetError(f"{pairs.file.name} has no folds to choose from; its pairs are "
                           f"dealt into {deal} folds in each configuration.")
    rows, problems, chosen = pair_rows(dataset, [pairs], folds)
    kind = f"{dataset.name}-pairs"
    if chosen is not None and len(chosen) < pairs.folds:
        kind += f"-folds{format_folds(chosen).replace(',', '+')}"
    notes: list[str] = []
    if pairs.folds == 1 and deal > 1:
        notes.append(f"{pairs.file.name} has no folds: its pairs are dealt round-robin into "
                     f"up to {deal} folds (same and different pairs apart, in file order)")
    if not labels:
        dealt = _deal(rows, deal, notes) if pairs.folds == 1 and deal > 1 else rows
        return configurations(kind, dealt, masked, seed=seed, source=pairs.file.name,
                              base_problems=problems, notes=notes)
    return _split_by_labels(dataset, kind, rows, pairs, problems, notes,
                            deal if pairs.folds == 1 else 1)


def _split_by_labels(dataset: Dataset, kind: str, rows: list[PairRow], pairs: PairList,
                     problems: list[Problem], notes: list[str], deal: int) -> list[Protocol]:
    states = {}
    for pair in pairs.pairs:
        for sample in (pair.a, pair.b):
            states[dataset.relpath(sample)] = mask_state(sample.attributes.get("mask"))
    groups: dict[str, list[PairRow]] = {c: [] for c in REAL_MASK_CONFIGURATIONS}
    left_out = list(problems)
    for row in rows:
        a, b = states[row.a], states[row.b]
        unlabelled = [p for p, s in ((row.a, a), (row.b, b)) if s is None]
        if unlabelled:
            left_out.append(Problem(pairs.file.name, row.source_line,
                                    f"pair {row.pair}: no mask label for {', '.join(unlabelled)}"))
            continue
        if a == "unmasked" and b == "masked":  # the masked image goes first
            row = replace(row, a=row.b, b=row.a, identity_a=row.identity_b,
                          identity_b=row.identity_a)
            a, b = b, a
        groups[f"{a}-{b}"].append(replace(row, a_side=a, b_side=b))
    notes = [*notes, "real masks: the images' own mask labels split the pairs; both roots "
                     "are the dataset's image folder"]
    notes += [f"{configuration}: no pair, not written"
              for configuration, group in groups.items() if not group]
    made = []
    for configuration, group in groups.items():
        if not group:
            continue
        dealt: list[str] = []
        group = _deal(group, deal, dealt) if deal > 1 else group
        made.append(Protocol(kind, configuration, group, list(left_out), pairs.file.name,
                             [*notes, *(f"{configuration}: {n}" for n in dealt)]))
    if not made:
        first = f"; first: {left_out[0]}" if left_out else ""
        raise DatasetError(f"No pair of {pairs.file.name} has mask labels on both images "
                           f"({len(left_out)} left out{first}).")
    return made


def _deal(rows: Sequence[PairRow], folds: int, notes: list[str]) -> list[PairRow]:
    """``rows`` with same and different pairs dealt round-robin into (at most) ``folds`` folds.

    Fewer folds when there are fewer same or different pairs than folds, so that every fold
    holds both; one fold (0) when either kind is missing."""
    same = [r for r in rows if r.same]
    different = [r for r in rows if not r.same]
    k = min(folds, len(same), len(different))
    if k < 2:
        notes.append(f"too few same ({len(same)}) or different ({len(different)}) pairs to "
                     "deal into folds: all in fold 0")
        return [replace(r, fold=0) for r in rows]
    if k < folds:
        kind = "same" if len(same) < len(different) else "different"
        notes.append(f"dealt into {k} folds: only {min(len(same), len(different))} {kind} "
                     "pairs")
    fold_of = {id(r): i % k for group in (same, different) for i, r in enumerate(group)}
    return [replace(r, fold=fold_of[id(r)]) for r in rows]

