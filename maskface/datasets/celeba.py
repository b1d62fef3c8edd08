"""CelebA: ``identity_CelebA.txt`` (``000001.jpg 2880`` per line) and ``img_align_celeba/``.

Both the flat layout (files beside the image folder) and the official download's
``Anno/``, ``Eval/`` and ``Img/`` folders are accepted. When present, ``list_attr_celeba.txt``
(40 binary attributes, -1/1 read as False/True) and ``list_eval_partition.txt`` (0 train,
1 val, 2 test) add attributes. A listed image that is missing is a problem with its line.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskface.datasets.base import (
    Dataset,
    DatasetError,
    Problem,
    ProtocolFileError,
    Sample,
    describe_folder,
)

IDENTITY_FILE = "identity_CelebA.txt"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_FOLDERS: tuple[str, ...] = ("img_align_celeba", "img_align_celeba_png", "img_celeba")
PARTITIONS: tuple[str, ...] = ("train", "val", "test")
_PLACES: tuple[str, ...] = ("", "Anno", "Eval", "Img")


class CelebADataset(Dataset):
    """CelebA images; identity = the number in ``identity_CelebA.txt``."""

    name = "celeba"
    description = "CelebA (identity_CelebA.txt + img_align_celeba/, optional attributes)"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        folders = [self.root / p / f for p in _PLACES for f in IMAGE_FOLDERS]
        found = next((f for f in folders if f.is_dir()), None)
        if found is None:
            raise DatasetError(
                f"{self.root} is not a CelebA root: expected img_align_celeba/ (or Img/"
                f"img_align_celeba/) and {IDENTITY_FILE}, found {describe_folder(self.root)}."
            )
        self._image_root = found
        self._find(IDENTITY_FILE, required=True)

    @property
    def image_root(self) -> Path:
        return self._image_root

    def _find(self, name: str, *, required: bool = False) -> Path | None:
        for place in _PLACES:
            if (self.root / place / name).is_file():
                return self.root / place / name
        if required:
            raise ProtocolFileError(
                f"The CelebA identity file {name} is missing under {self.root} "
                "(looked in the root and in Anno/)."
            )
        return None

    @property
    def protocol_files(self) -> list[Path]:
        names = (IDENTITY_FILE, ATTRIBUTE_FILE, PARTITION_FILE)
        return [p for p in (self._find(n) for n in names) if p is not None]

    def _scan(self) -> tuple[list[Sample], list[Problem]]:
        identity_path = self._find(IDENTITY_FILE, required=True)
        assert identity_path is not None
        problems: list[Problem] = []
        extra = self._attributes(problems)
        present = set(os.listdir(self.image_root))
        samples: list[Sample] = []
        for number, fields in _lines(identity_path):
            if len(fields) != 2:
                problems.append(Problem(IDENTITY_FILE, number, "expected 'image identity'"))
                continue
            file, identity = fields
            if file not in present:
                # The PNG release renames the files but keeps the identity file's .jpg names.
                png = os.path.splitext(file)[0] + ".png"
                if png not in present:
                    problems.append(Problem(IDENTITY_FILE, number, f"names missing image {file}"))
                    continue
                file = png
            attributes = extra.get(fields[0], {})
            samples.append(Sample(self.image_root / file, identity, attributes))
        return samples, problems

    def _attributes(self, problems: list[Problem]) -> dict[str, dict[str, object]]:
        """Per image file name: the binary attributes and the partition, when those files exist."""
        table: dict[str, dict[str, object]] = {}
        path = self._find(ATTRIBUTE_FILE)
        if path is not None:
            lines = list(_lines(path))
            # Line 1 is the image count, line 2 the attribute names.
            names = lines[1][1] if len(lines) > 1 else []
            for number, fields in lines[2:]:
                if len(fields) != len(names) + 1:
                    problems.append(Problem(ATTRIBUTE_FILE, number,
                                            f"expected {len(names) + 1} fields"))
                    continue
                table[fields[0]] = {n: v == "1" for n, v in zip(names, fields[1:], strict=True)}
        path = self._find(PARTITION_FILE)
        if path is not None:
            for number, fields in _lines(path):
                if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                    problems.append(Problem(PARTITION_FILE, number, "expected 'image 0|1|2'"))
                    continue
                table.setdefault(fields[0], {})["partition"] = PARTITIONS[int(fields[1])]
        return table


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
