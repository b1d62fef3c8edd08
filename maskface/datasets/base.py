"""The common dataset interface: samples (path, identity, attributes), identities, splits.

Every adapter turns one on-disk layout into :class:`Sample` objects and collects what it could
not read as :class:`Problem` objects instead of guessing or dropping it silently. Adapters are
cheap to construct (they check the layout) and read their index lazily, once.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from maskface.errors import MaskfaceError
from maskface.imageio import is_image_path


class DatasetError(MaskfaceError):
    """A dataset cannot be read as asked (wrong root, unknown name, bad options)."""


class ProtocolFileError(DatasetError):
    """A protocol file (pairs, people, identity list) is missing or has problems."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset; ``identity`` is ``None`` for datasets without identities."""

    path: Path
    identity: str | None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """Something an adapter could not use: where (file, 1-based line or 0) and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


class Dataset(ABC):
    """Base class of the adapters.

    ``root`` is the folder the user gave; ``image_root`` the folder whose tree holds the images
    (a masked copy mirrors it); ``protocol_files`` the text files that describe the dataset
    (pairs, identity lists), which a masked copy gets as they are.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    # Only table datasets take a file as their root.
    root_may_be_file: ClassVar[bool] = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DatasetError(f"The {self.name} root {self.root} does not exist.")
        if not self.root.is_dir() and not self.root_may_be_file:
            raise DatasetError(f"The {self.name} root {self.root} is a file, not a folder.")

    @property
    @abstractmethod
    def image_root(self) -> Path:
        """The folder whose tree holds the images."""

    @property
    def protocol_files(self) -> list[Path]:
        """Protocol and label files found beside the images (copied into masked copies)."""
        return []

    @abstractmethod
    def _scan(self) -> tuple[list[Sample], list[Problem]]:
        """Read the index: every usable sample, and every problem met on the way."""

    @cached_property
    def _index(self) -> tuple[list[Sample], list[Problem]]:
        return self._scan()

    @property
    def samples(self) -> list[Sample]:
        """Every usable sample, in a deterministic order."""
        return self._index[0]

    @property
    def problems(self) -> list[Problem]:
        """What could not be used, with the reason; never silently dropped."""
        return self._index[1]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def identities(self) -> list[str]:
        """Sorted identities (empty for datasets without identities)."""
        return sorted({s.identity for s in self.samples if s.identity is not None})

    def by_identity(self) -> dict[str, list[Sample]]:
        """Samples grouped by identity, identities sorted, samples in dataset order."""
        groups: dict[str, list[Sample]] = {}
        for sample in self.samples:
            if sample.identity is not None:
                groups.setdefault(sample.identity, []).append(sample)
        return dict(sorted(groups.items()))

    def split(
        self, fractions: Sequence[float] = (0.8, 0.2), *, seed: int = 0, by_identity: bool = True
    ) -> list[list[Sample]]:
        """Split into parts of the given ``fractions`` (summing to 1), seeded.

        With ``by_identity`` (and identities present) whole identities go to one part, so that
        no person is in two parts; otherwise samples are split one by one.
        """
        if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise DatasetError(f"Split fractions must be non-negative and sum to 1: {fractions}.")
        rng = np.random.default_rng(seed)
        groups: list[list[Sample]]
        if by_identity and self.identities():
            groups = list(self.by_identity().values())
        else:
            groups = [[s] for s in self.samples]
        order = rng.permutation(len(groups))
        bounds = np.round(np.cumsum(fractions) * len(groups)).astype(int)
        parts: list[list[Sample]] = []
        start = 0
        for end in bounds:
            parts.append([s for i in order[start:end] for s in groups[i]])
            start = end
        return parts

    def relpath(self, sample: Sample) -> str:
        """The sample's path relative to :attr:`image_root`, with ``/``."""
        return sample.path.relative_to(self.image_root).as_posix()

    def info(self) -> dict[str, Any]:
        """Counts for reports: samples, identities, problems."""
        return {
            "name": self.name,
            "root": str(self.root),
            "image_root": str(self.image_root),
            "samples": len(self.samples),
            "identities": len(self.identities()),
            "problems": len(self.problems),
            "protocol_files": [p.name for p in self.protocol_files],
        }


def is_image(name: str) -> bool:
    """Whether a file name is a dataset image: not hidden (temp files), not a ``.mask.png``
    coverage sidecar of a masked copy, and with an extension maskface reads."""
    return not name.startswith(".") and not name.endswith(".mask.png") and is_image_path(name)


def describe_folder(folder: Path, limit: int = 5) -> str:
    """A short listing of what a folder holds, for 'expected X, found Y' messages."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        return f"an unreadable folder ({exc.strerror})"
    if not names:
        return "an empty folder"
    shown = ", ".join(n + ("/" if (folder / n).is_dir() else "") for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{shown}{more}"
