"""MFR2-style datasets: ``<Name>/<Name>_000N.png`` with a header-less ``pairs.txt``.

``pairs.txt`` holds LFW-style lines (``name n1 n2`` same person, ``name1 n1 name2 n2``
different), all in fold 0. An optional ``mfr2_labels.txt`` (or ``labels.txt``) gives each image
a mask label: lines ``name,number,label`` (commas or whitespace; a header line is skipped), or
``<Name>_<NNNN>.<ext>,label``; the label becomes the ``mask`` attribute. MFR2 labels a bare
face ``no-mask`` and a masked one by its mask type (``surgical_blue``, ``cloth``, ...):
:func:`mask_state` tells them apart, and the ``pairs-file`` protocol splits the pairs by it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from maskface.datasets.base import Dataset, DatasetError, Problem, Sample, describe_folder
from maskface.datasets.lfw import LfwDataset
from maskface.datasets.pairs import PairList, read_pairs_file

PAIRS_FILE = "pairs.txt"
# Labels of a bare face (MFR2 writes "no-mask"); any other label names a mask type.
UNMASKED_LABELS: frozenset[str] = frozenset({
    "no-mask", "no_mask", "nomask", "no mask", "none", "unmasked", "without_mask",
    "without-mask", "without mask", "bare", "no", "0", "false",
})
# Labels that say nothing either way: the image's pairs are left out and reported.
UNKNOWN_LABELS: frozenset[str] = frozenset({"", "unknown", "?", "n/a", "na"})
LABEL_FILES: tuple[str, ...] = ("mfr2_labels.txt", "labels.txt")
_FILE = re.compile(r"^(?P<person>.+)_(?P<number>\d+)\.[A-Za-z]+$")


class Mfr2Dataset(LfwDataset):
    """MFR2 (or any dataset in its layout), with optional per-image mask labels."""

    name = "mfr2"
    description = "MFR2-style <Name>/<Name>_000N.png + pairs.txt (optional mask labels)"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        Dataset.__init__(self, root)
        image_root = self.root / "mfr2" if (self.root / "mfr2").is_dir() else self.root
        if not (image_root.is_dir() and _has_person_folders(image_root)):
            raise DatasetError(
                f"{self.root} is not an MFR2 root: expected mfr2/ or <Name>/<Name>_000N.png "
                f"folders with {PAIRS_FILE}, found {describe_folder(self.root)}."
            )
        self._image_root, self.layout = image_root, "mfr2"

    @property
    def protocol_files(self) -> list[Path]:
        names = (PAIRS_FILE, *LABEL_FILES)
        places = dict.fromkeys([self.image_root, self.root])
        return [p / n for n in names for p in places if (p / n).is_file()]

    def _scan(self) -> tuple[list[Sample], list[Problem]]:
        samples, problems = super()._scan()
        labels = self._labels(problems)
        if labels:
            samples = [
                Sample(s.path, s.identity,
                       {**s.attributes, "mask": labels[(s.identity, s.attributes["number"])]})
                if (s.identity, s.attributes["number"]) in labels else s
                for s in samples
            ]
        return samples, problems

    def _labels(self, problems: list[Problem]) -> dict[tuple[str | None, int], str]:
        path = next((p for p in self.protocol_files if p.name in LABEL_FILES), None)
        if path is None:
            return {}
        labels: dict[tuple[str | None, int], str] = {}
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            fields = [f.strip() for f in re.split(r"[,\t]|\s{2,}", line.strip()) if f.strip()]
            if len(fields) < 2:
                fields = line.split()
            if not fields:
                continue
            match = _FILE.match(fields[0])
            if match and len(fields) >= 2:
                labels[(match["person"], int(match["number"]))] = " ".join(fields[1:])
            elif len(fields) >= 3 and fields[1].isdigit():
                labels[(fields[0], int(fields[1]))] = " ".join(fields[2:])
            elif number > 1:  # line 1 may be a header
                problems.append(Problem(path.name, number, "expected 'name,number,label'"))
        return labels

    def pairs(self, view: str = "pairs", *, strict: bool = False) -> PairList:
        """The pairs of ``pairs.txt`` (one fold; kind told by the number of fields)."""
        return read_pairs_file(self.protocol_file(PAIRS_FILE), self.lookup, header=False,
                               strict=strict)


def mask_state(label: object) -> str | None:
    """``"masked"``, ``"unmasked"`` or ``None`` (no label, or one that does not say) for a
    per-image mask label such as MFR2's ``surgical_blue`` or ``no-mask``."""
    if label is None:
        return None
    text = str(label).strip().lower()
    if text in UNKNOWN_LABELS:
        return None
    return "unmasked" if text in UNMASKED_LABELS else "masked"


def _has_person_folders(folder: Path) -> bool:
    return any(e.is_dir() for e in os.scandir(folder))
