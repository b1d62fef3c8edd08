"""Face datasets behind one interface, by name: ``load_dataset("lfw", root)``.

Each adapter yields :class:`Sample` objects (path, identity, attributes), lists identities,
splits with a seed and reports what it could not read in ``problems``. See the adapter modules
for the layouts they accept.
"""

from __future__ import annotations

import os
from typing import Any

from maskface.datasets.base import (
    Dataset,
    DatasetError,
    Problem,
    ProtocolFileError,
    Sample,
)
from maskface.datasets.celeba import CelebADataset
from maskface.datasets.folder import CasiaWebFaceDataset, FolderDataset, VggFace2Dataset
from maskface.datasets.lfw import LfwDataset
from maskface.datasets.mfr2 import Mfr2Dataset
from maskface.datasets.pairs import Pair, PairList
from maskface.datasets.table import TableDataset
from maskface.datasets.utkface import UtkFaceDataset

DATASETS: dict[str, type[Dataset]] = {
    cls.name: cls
    for cls in (LfwDataset, Mfr2Dataset, CelebADataset, UtkFaceDataset, CasiaWebFaceDataset,
                VggFace2Dataset, FolderDataset, TableDataset)
}

__all__ = [
    "DATASETS",
    "CelebADataset",
    "Dataset",
    "DatasetError",
    "FolderDataset",
    "LfwDataset",
    "Mfr2Dataset",
    "Pair",
    "PairList",
    "Problem",
    "ProtocolFileError",
    "Sample",
    "TableDataset",
    "UtkFaceDataset",
    "list_datasets",
    "load_dataset",
]


def list_datasets() -> list[str]:
    """Names :func:`load_dataset` accepts."""
    return list(DATASETS)


def load_dataset(name: str, root: str | os.PathLike[str], **options: Any) -> Dataset:
    """The dataset ``name`` at ``root``; ``options`` go to the adapter (e.g. ``layout=``)."""
    try:
        cls = DATASETS[name.lower()]
    except KeyError:
        raise DatasetError(
            f"Unknown dataset {name!r}; choose from {', '.join(DATASETS)}."
        ) from None
    try:
        return cls(root, **options)
    except TypeError as exc:
        raise DatasetError(f"Bad option for dataset {name!r}: {exc}.") from None
