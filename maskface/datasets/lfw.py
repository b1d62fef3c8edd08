"""Labeled Faces in the Wild: original, funneled and deep-funneled layouts, and its protocols.

``root`` is either the folder an LFW archive unpacks into (``lfw/``, ``lfw_funneled/`` or
``lfw-deepfunneled/``, holding ``<Name>/<Name>_NNNN.jpg``) or a folder that contains one of
them. The protocol files (``pairs.txt``, ``people.txt``, ``pairsDevTrain.txt``, ...) are looked
up in the image folder, then in ``root``, then beside the image folder, since the official
downloads put them next to the unpacked archive. Masked copies with several variants per image
(``<Name>_NNNN_<k>_<style>.jpg``) are read too: the variant and style become attributes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

from maskface.datasets.base import (
    Dataset,
    DatasetError,
    Problem,
    ProtocolFileError,
    Sample,
    describe_folder,
    is_image,
)
from maskface.datasets.pairs import PairList, read_pairs_file

LAYOUTS: dict[str, str] = {
    "original": "lfw",
    "funneled": "lfw_funneled",
    "deep-funneled": "lfw-deepfunneled",
}
# View 2 is the 10-fold benchmark; View 1 the development train/test split.
PAIRS_FILES: dict[str, str] = {
    "view2": "pairs.txt",
    "view1-train": "pairsDevTrain.txt",
    "view1-test": "pairsDevTest.txt",
}
PEOPLE_FILES: dict[str, str] = {
    "view2": "people.txt",
    "view1-train": "peopleDevTrain.txt",
    "view1-test": "peopleDevTest.txt",
}
VIEW2_FOLDS = 10
_NAME = re.compile(r"^(?P<person>.+)_(?P<number>\d{4})(?:_(?P<variant>\d+)_(?P<style>[^.]+))?$")


class LfwDataset(Dataset):
    """LFW images (identity = person folder) with View 1 and View 2 pairs and people lists."""

    name = "lfw"
    description = "Labeled Faces in the Wild (original, funneled or deep-funneled) + pairs"

    def __init__(self, root: str | os.PathLike[str], *, layout: str | None = None) -> None:
        super().__init__(root)
        if layout is not None and layout not in LAYOUTS:
            raise DatasetError(f"Unknown LFW layout {layout!r}; choose from {', '.join(LAYOUTS)}.")
        self._image_root, self.layout = self._locate(layout)

    @property
    def image_root(self) -> Path:
        return self._image_root

    def _locate(self, layout: str | None) -> tuple[Path, str]:
        wanted = [layout] if layout else list(LAYOUTS)
        found = [(LAYOUTS[k], k) for k in wanted if (self.root / LAYOUTS[k]).is_dir()]
        if len(found) > 1:
            names = ", ".join(f"{folder}/ ({k})" for folder, k in found)
            raise DatasetError(
                f"{self.root} holds several LFW layouts ({names}); pass layout= to choose one."
            )
        if found:
            return self.root / found[0][0], found[0][1]
        if _looks_like_lfw(self.root):
            named = {folder: k for k, folder in LAYOUTS.items()}
            return self.root, named.get(self.root.name, layout or "unknown")
        folders = ", ".join(f"{f}/" for f in LAYOUTS.values())
        raise DatasetError(
            f"{self.root} is not an LFW root: expected {folders} or <Name>/<Name>_NNNN.jpg "
            f"folders, found {describe_folder(self.root)}."
        )

    def protocol_file(self, name: str) -> Path:
        """The path of protocol file ``name``; :class:`ProtocolFileError` when absent."""
        places = dict.fromkeys([self.image_root, self.root, self.image_root.parent])
        for folder in places:
            if (folder / name).is_file():
                return folder / name
        where = ", ".join(str(p) for p in places)
        raise ProtocolFileError(
            f"The LFW protocol file {name} is missing (looked in {where}); "
            "'maskface datasets download lfw' fetches it."
        )

    @property
    def protocol_files(self) -> list[Path]:
        files = []
        for name in [*PAIRS_FILES.values(), *PEOPLE_FILES.values()]:
            try:
                files.append(self.protocol_file(name))
            except ProtocolFileError:
                continue
        return files

    def _scan(self) -> tuple[list[Sample], list[Problem]]:
        samples: list[Sample] = []
        problems: list[Problem] = []
        for person in sorted(e.name for e in os.scandir(self.image_root) if e.is_dir()):
            folder = self.image_root / person
            for file in sorted(os.listdir(folder)):
                if not is_image(file):
                    continue
                match = _NAME.match(os.path.splitext(file)[0])
                if match is None or match["person"] != person:
                    problems.append(Problem(f"{person}/{file}", 0,
                                            f"not named {person}_NNNN inside {person}/"))
                    continue
                attributes: dict[str, object] = {"number": int(match["number"])}
                if match["variant"] is not None:
                    attributes.update(variant=int(match["variant"]), style=match["style"])
                samples.append(Sample(folder / file, person, attributes))
        return samples, problems

    def lookup(self, person: str, number: int) -> Sample | None:
        """The (first variant of the) image ``<person>_<number>``, or ``None``."""
        return self._by_name.get((person, number))

    @cached_property
    def _by_name(self) -> dict[tuple[str, int], Sample]:
        names: dict[tuple[str, int], Sample] = {}
        for sample in self.samples:
            assert sample.identity is not None
            names.setdefault((sample.identity, sample.attributes["number"]), sample)
        return names

    def pairs(self, view: str = "view2", *, strict: bool = False) -> PairList:
        """The pairs of ``view``: ``view2`` (10 folds of 300 + 300), ``view1-train`` or
        ``view1-test``. Lines naming a missing image are listed in ``problems``."""
        if view not in PAIRS_FILES:
            raise DatasetError(f"Unknown LFW view {view!r}; choose from {', '.join(PAIRS_FILES)}.")
        path = self.protocol_file(PAIRS_FILES[view])
        return read_pairs_file(path, self.lookup, header=True, strict=strict)

    def people(self, view: str = "view2") -> tuple[list[tuple[int, str, int]], list[Problem]]:
        """``(fold, name, image count)`` rows of a people file, and its problems.

        ``people.txt`` is ``folds`` then, per fold, a count and that many ``name count`` lines;
        the DevTrain/DevTest files are one count then the lines (fold 0).
        """
        if view not in PEOPLE_FILES:
            raise DatasetError(f"Unknown LFW view {view!r}; choose from {', '.join(PEOPLE_FILES)}.")
        path = self.protocol_file(PEOPLE_FILES[view])
        lines = [(n, line.split()) for n, line in
                 enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.split()]
        rows: list[tuple[int, str, int]] = []
        problems: list[Problem] = []
        blocks = _count(path, lines, 0) if view == "view2" else 1
        position = 1 if view == "view2" else 0
        for fold in range(blocks):
            if position >= len(lines):
                problems.append(Problem(path.name, 0, f"fold {fold} is missing"))
                break
            count = _count(path, lines, position)
            for number, fields in lines[position + 1 : position + 1 + count]:
                if len(fields) != 2 or not fields[1].isdigit():
                    problems.append(Problem(path.name, number, "expected 'name count'"))
                    continue
                if self.lookup(fields[0], 1) is None:
                    problems.append(Problem(path.name, number, f"no images of {fields[0]}"))
                rows.append((fold, fields[0], int(fields[1])))
            position += 1 + count
        if position < len(lines):
            problems.append(Problem(path.name, lines[position][0], "unexpected extra lines"))
        return rows, problems


def parse_folds(spec: str | int | Iterable[int] | None, available: int = VIEW2_FOLDS,
                ) -> tuple[int, ...] | None:
    """1-based fold numbers from ``"6-10"``, ``"1,3,5-7"``, an int or ints; ``None`` = all.

    Numbers are checked against ``available`` folds; duplicates are dropped, order sorted."""
    if spec is None:
        return None
    if isinstance(spec, int):
        numbers = [spec]
    elif isinstance(spec, str):
        numbers = []
        for part in (p.strip() for p in spec.split(",")):
            low, dash, high = part.partition("-")
            if not (low.strip().isdigit() and (not dash or high.strip().isdigit())):
                raise DatasetError(f"Bad fold selection {spec!r}: use numbers and ranges such "
                                   f"as '6-10' or '1,3,5-7' (folds 1-{available}).")
            first, last = int(low), int(high) if dash else int(low)
            if first > last:
                raise DatasetError(f"Bad fold range {part!r} in {spec!r}: {first} > {last}.")
            numbers.extend(range(first, last + 1))
    else:
        numbers = [int(k) for k in spec]
    if not numbers:
        raise DatasetError("The fold selection is empty.")
    wrong = sorted({k for k in numbers if not 1 <= k <= available})
    if wrong:
        raise DatasetError(f"No fold {', '.join(map(str, wrong))}: folds are numbered "
                           f"1-{available}, as in the pairs file.")
    return tuple(sorted(set(numbers)))


def format_folds(folds: Iterable[int]) -> str:
    """``(1, 3, 5, 6, 7)`` -> ``"1,3,5-7"`` (the inverse of :func:`parse_folds`)."""
    runs: list[list[int]] = []
    for k in sorted(set(folds)):
        if runs and k == runs[-1][1] + 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def fold_people(root: str | os.PathLike[str] | LfwDataset,
                folds: str | int | Iterable[int] | None = None) -> set[str]:
    """The people of the given 1-based View 2 folds, from ``people.txt`` (all folds: ``None``).

    View 2's folds are disjoint in people, so training on people outside the test folds
    keeps the benchmark honest: ``fold_people(root, "1-5")`` never meets folds 6-10."""
    dataset = root if isinstance(root, LfwDataset) else LfwDataset(root)
    rows, _ = dataset.people("view2")
    count = 1 + max((fold for fold, _, _ in rows), default=-1)
    chosen = parse_folds(folds, max(count, 1))
    wanted = set(range(count)) if chosen is None else {k - 1 for k in chosen}
    return {name for fold, name, _ in rows if fold in wanted}


def _count(path: Path, lines: list[tuple[int, list[str]]], position: int) -> int:
    if position < len(lines) and len(lines[position][1]) == 1 and lines[position][1][0].isdigit():
        return int(lines[position][1][0])
    number = lines[position][0] if position < len(lines) else len(lines) + 1
    raise ProtocolFileError(f"{path.name} line {number} should be a count of the lines below it.")


def _looks_like_lfw(folder: Path) -> bool:
    """Whether some person folder holds a ``<Name>_NNNN`` image (checks a few, not all)."""
    for checked, entry in enumerate(os.scandir(folder)):
        if checked >= 20:
            break
        if entry.is_dir():
            for file in os.listdir(entry.path):
                match = _NAME.match(os.path.splitext(file)[0])
                if is_image(file) and match and match["person"] == entry.name:
                    return True
    return False
