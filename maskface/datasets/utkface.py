"""UTKFace: age, gender and race read from ``<age>_<gender>_<race>_<datetime>.jpg.chip.jpg``.

Gender is 0 (male) or 1 (female); race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others; the
datetime is the 17-digit ``yyyymmddHHMMSSfff`` capture time. The release has a few names that
break this pattern (a missing field, a stray space, a missing dot): they are listed in
``problems`` with the reason and never guessed. There are no identities.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from maskface.datasets.base import Dataset, DatasetError, Problem, Sample, describe_folder, is_image

GENDERS: tuple[str, ...] = ("male", "female")
RACES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")
FOLDERS: tuple[str, ...] = ("UTKFace", "crop_part1", "utkface_aligned_cropped")
_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{17})\.jpg(?:\.chip\.jpg)?$")


class UtkFaceDataset(Dataset):
    """UTKFace images with ``age``, ``gender``, ``race`` and ``datetime`` attributes."""

    name = "utkface"
    description = "UTKFace (age, gender, race from file names; malformed names reported)"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        for folder in FOLDERS:
            if (self.root / folder).is_dir():
                self._image_root = self.root / folder
                break
        else:
            self._image_root = self.root
        if not any(is_image(n) for n in os.listdir(self._image_root)):
            raise DatasetError(
                f"{self.root} is not a UTKFace root: expected {'/, '.join(FOLDERS)}/ or a folder "
                f"of <age>_<gender>_<race>_<datetime>.jpg.chip.jpg files, found "
                f"{describe_folder(self.root)}."
            )

    @property
    def image_root(self) -> Path:
        return self._image_root

    def _scan(self) -> tuple[list[Sample], list[Problem]]:
        samples: list[Sample] = []
        problems: list[Problem] = []
        for file in sorted(os.listdir(self.image_root)):
            if not is_image(file):
                continue
            match = _NAME.match(file)
            if match is None:
                problems.append(Problem(file, 0, malformed_reason(file)))
                continue
            age, gender, race, stamp = match.groups()
            attributes = {"age": int(age), "gender": int(gender), "race": int(race),
                          "datetime": stamp}
            samples.append(Sample(self.image_root / file, None, attributes))
        return samples, problems


def malformed_reason(file: str) -> str:
    """Why ``file`` does not follow ``<age>_<gender>_<race>_<datetime>.jpg.chip.jpg``."""
    if any(c.isspace() for c in file):
        return "whitespace inside the name"
    stem, dot, _ = file.partition(".")
    fields = stem.split("_")
    if len(fields) != 4:
        return f"{len(fields)} underscore-separated fields instead of 4 (age_gender_race_datetime)"
    if not dot or not file[len(stem):].startswith(".jpg"):
        return "no '.jpg' right after the datetime"
    age, gender, race, stamp = fields
    if not age.isdigit():
        return f"age {age!r} is not a number"
    if gender not in ("0", "1"):
        return f"gender {gender!r} is not 0 or 1"
    if race not in ("0", "1", "2", "3", "4"):
        return f"race {race!r} is not 0-4"
    if not (stamp.isdigit() and len(stamp) == 17):
        return f"datetime {stamp!r} is not 17 digits"
    return "does not end in .jpg or .jpg.chip.jpg"
