"""LFW-style pairs files: ``name n1 n2`` (same person) and ``name1 n1 name2 n2`` (different).

A file with a header (LFW's ``pairs.txt``: ``folds per_fold``; ``pairsDevTrain.txt``: ``n``)
fixes each line's fold and kind by its position: every fold is ``per_fold`` same-person lines
then ``per_fold`` different-person lines. A file without one (MFR2) puts every line in fold 0
and tells the kind by the number of fields. A line that names a missing image, is malformed, or
contradicts its position becomes a :class:`~maskface.datasets.base.Problem` with its line
number; the valid pairs are kept, and ``strict`` turns any problem into an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maskface.datasets.base import Problem, ProtocolFileError, Sample

Lookup = Callable[[str, int], Sample | None]


@dataclass(frozen=True)
class Pair:
    """Two samples to compare; ``line`` is the 1-based line of the pairs file."""

    a: Sample
    b: Sample
    same: bool
    fold: int
    line: int


@dataclass
class PairList:
    """The valid pairs of a pairs file and the problems of the others."""

    file: Path
    pairs: list[Pair]
    problems: list[Problem] = field(default_factory=list)
    folds: int = 1
    per_fold: int = 0

    def fold(self, k: int) -> list[Pair]:
        """The pairs of fold ``k`` (0-based)."""
        return [p for p in self.pairs if p.fold == k]

    def raise_problems(self) -> None:
        """Raise :class:`ProtocolFileError` if any line had a problem."""
        if self.problems:
            raise ProtocolFileError(
                f"{self.file.name} has {len(self.problems)} unusable line(s); "
                f"first: {self.problems[0]}."
            )


def read_pairs_file(
    path: Path, lookup: Lookup, *, header: bool, strict: bool = False
) -> PairList:
    """Parse an LFW-style pairs file, resolving ``(name, number)`` with ``lookup``."""
    if not path.is_file():
        raise ProtocolFileError(f"The pairs file {path} does not exist.")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    problems: list[Problem] = []
    folds, per_fold, start = 1, 0, 0
    if header:
        folds, per_fold = _parse_header(path, lines[0] if lines else "")
        start = 1
    result = PairList(path, [], problems, folds, per_fold)
    body = [(n, line.split()) for n, line in enumerate(lines[start:], start + 1)]
    body = [(n, fields) for n, fields in body if fields]
    if header and len(body) != 2 * folds * per_fold:
        problems.append(Problem(path.name, 0, (
            f"the header announces {2 * folds * per_fold} pairs, the file has {len(body)}")))
    for index, (number, fields) in enumerate(body):
        if header:
            fold, position = divmod(index, 2 * per_fold)
            expected_same: bool | None = position < per_fold
        else:
            fold, expected_same = 0, None
        pair = _parse_line(path.name, number, fields, fold, expected_same, lookup, problems)
        if pair is not None:
            result.pairs.append(pair)
    if strict:
        result.raise_problems()
    return result


def _parse_header(path: Path, first: str) -> tuple[int, int]:
    fields = first.split()
    try:
        numbers = [int(f) for f in fields]
    except ValueError:
        numbers = []
    if len(numbers) == 2 and min(numbers) > 0:
        return numbers[0], numbers[1]
    if len(numbers) == 1 and numbers[0] > 0:
        return 1, numbers[0]
    raise ProtocolFileError(
        f"{path.name} line 1 should be a header 'folds per_fold' or 'count', not {first!r}."
    )


def _parse_line(
    file: str, number: int, fields: list[str], fold: int, expected_same: bool | None,
    lookup: Lookup, problems: list[Problem],
) -> Pair | None:
    if len(fields) == 3:
        names = [(fields[0], fields[1]), (fields[0], fields[2])]
    elif len(fields) == 4:
        names = [(fields[0], fields[1]), (fields[2], fields[3])]
    else:
        problems.append(Problem(file, number, f"expected 3 or 4 fields, found {len(fields)}"))
        return None
    same = len(fields) == 3
    if expected_same is not None and same != expected_same:
        kind = "same-person (name n1 n2)" if expected_same else "different-person"
        problems.append(Problem(file, number, f"a {kind} line was expected at this position"))
        return None
    bad = [text for _, text in names if not text.isdigit()]
    if bad:
        problems.append(Problem(file, number, f"image number {bad[0]!r} is not a number"))
        return None
    samples = [lookup(name, int(text)) for name, text in names]
    missing = [f"{n}_{int(t):04d}" for (n, t), s in zip(names, samples, strict=True) if s is None]
    if missing:
        problems.append(Problem(file, number, f"names missing image {', '.join(missing)}"))
        return None
    a, b = samples
    assert a is not None and b is not None
    return Pair(a, b, same, fold, number)
