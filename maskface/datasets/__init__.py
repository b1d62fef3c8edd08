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
from maskface.errors import UnknownNameError
from maskface.registry import Registry


class UnknownDatasetError(UnknownNameError, DatasetError):
    """A dataset name :func:`load_dataset` does not know."""

    def __str__(self) -> str:
        # Worded as the other dataset errors are: a sentence.
        text = super().__str__()
        return text[:1].upper() + text[1:] + "."


# Listed in registration order: the most used first.
DATASETS: Registry[type[Dataset]] = Registry("dataset", sort=False, error=UnknownDatasetError)
for _cls in (LfwDataset, Mfr2Dataset, CelebADataset, UtkFaceDataset, CasiaWebFaceDataset,
             VggFace2Dataset, FolderDataset, TableDataset):
    DATASETS.register(_cls.name, _cls)

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
    "UnknownDatasetError",
    "UtkFaceDataset",
    "list_datasets",
    "load_dataset",
]


def list_datasets(pattern: str | None = None) -> list[str]:
    """Names :func:`load_dataset` accepts (those matching ``pattern``, if given)."""
    return DATASETS.list(pattern)


def load_dataset(name: str, root: str | os.PathLike[str], **options: Any) -> Dataset:
    """The dataset ``name`` at ``root``; ``options`` go to the adapter (e.g. ``layout=``)."""
    cls = DATASETS[name]
    try:
        return cls(root, **options)
    except TypeError as exc:
        raise DatasetError(f"Bad option for dataset {name!r}: {exc}.") from None
