"""Reference/probe protocol: per identity one reference, one genuine and one impostor probe.

Every identity with at least two images is eligible. For each chosen identity a seeded
generator picks a reference image, a genuine probe (another image of the same identity) and an
impostor probe (an image of another identity, chosen uniformly among all other identities),
giving two rows: (reference, genuine probe, same=1) and (reference, impostor probe, same=0).
``pairs=N`` (even) draws ``N / 2`` identities without replacement, as in masked benchmarks
that sample 1000 pairs; ``pairs=None`` uses every eligible identity. A dataset with fewer
eligible identities (MFR2) gives all it has, and the protocol's notes and kind
(``reference-probe-<pairs drawn>``) say so. Rows are in sorted
identity order and all in fold 0. In the masked configurations the reference is side ``a`` and
the probe side ``b``: ``unmasked-masked`` is the usual unmasked reference vs masked probe.
"""

from __future__ import annotations

import numpy as np

from maskface.datasets.base import Dataset, DatasetError
from maskface.protocols.base import PairRow, Protocol, configurations
from maskface.protocols.masked import MaskedCopy

KIND = "reference-probe"


def reference_probe(
    dataset: Dataset, *, pairs: int | None = 1000, masked: MaskedCopy | None = None,
    seed: int = 0,
) -> list[Protocol]:
    """The reference/probe protocol of ``dataset`` in every configuration."""
    by_identity = dataset.by_identity()
    everyone = list(by_identity)
    groups = {k: v for k, v in by_identity.items() if len(v) >= 2}
    if not groups or len(everyone) < 2:
        raise DatasetError(
            f"A reference/probe protocol needs an identity with two images and at least two "
            f"identities; {dataset.name} has {len(groups)} and {len(everyone)}."
        )
    names = sorted(groups)
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    if pairs is not None:
        if pairs < 2 or pairs % 2:
            raise DatasetError(f"pairs must be an even number of at least 2, got {pairs}.")
        if pairs // 2 > len(names):
            notes.append(f"asked for {pairs} pairs, which need {pairs // 2} identities with "
                         f"two images; {dataset.name} has {len(names)}: drew "
                         f"{2 * len(names)} pairs, two per identity")
        names = sorted(rng.choice(names, size=min(pairs // 2, len(names)),
                                  replace=False).tolist())
    rows: list[PairRow] = []
    for name in names:
        reference, genuine = rng.choice(len(groups[name]), size=2, replace=False)
        # Uniform over the other identities: draw among n - 1, then step over the identity.
        index = int(rng.integers(len(everyone) - 1))
        if index >= everyone.index(name):
            index += 1
        others = by_identity[everyone[index]]
        impostor = others[int(rng.integers(len(others)))]
        a = dataset.relpath(groups[name][reference])
        for probe, same in ((groups[name][genuine], True), (impostor, False)):
            rows.append(PairRow(pair=len(rows), fold=0, same=same, a=a,
                                b=dataset.relpath(probe), identity_a=name,
                                identity_b=probe.identity or ""))
    # Named by the pairs drawn, which are fewer than asked on a small dataset.
    kind = f"{KIND}-all" if pairs is None else f"{KIND}-{len(rows)}"
    return configurations(kind, rows, masked, seed=seed, source=dataset.name, notes=notes)
