"""Pair protocols in four configurations, written as commented CSV files.

A protocol starts as base pairs of unmasked images (``a``, ``b``, same or not, fold). Given a
masked copy, each configuration decides which side is masked: ``unmasked-unmasked``,
``masked-unmasked`` (``a`` masked, e.g. a masked reference), ``unmasked-masked`` (``b``
masked, e.g. a masked probe) and ``masked-masked``. All configurations keep the base pairs'
order, folds and labels; a pair whose masked image is missing is left out of the
configurations that need it and reported with its source line.

CSV format (UTF-8, ``#`` comment lines first; ``pandas.read_csv(path, comment="#")`` reads it)::

    pair,fold,same,a_side,a,b_side,b,identity_a,identity_b,source_line

``pair`` is the base pair's 0-based index (equal across configurations, so results can be
matched), ``fold`` the 0-based cross-validation fold, ``same`` 1 or 0, ``a_side``/``b_side``
``unmasked`` or ``masked``: which root (listed in the comments) the ``/``-separated path
``a``/``b`` is relative to, and ``source_line`` the line of the source pairs file (0 when the
pairs were drawn by maskface).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from maskface.atomic import write_bytes_atomic
from maskface.datasets.base import Dataset, DatasetError, Problem
from maskface.datasets.pairs import PairList
from maskface.protocols.masked import MaskedCopy

CONFIGURATIONS: tuple[str, ...] = (
    "unmasked-unmasked", "masked-unmasked", "unmasked-masked", "masked-masked",
)
COLUMNS: tuple[str, ...] = (
    "pair", "fold", "same", "a_side", "a", "b_side", "b", "identity_a", "identity_b",
    "source_line",
)
_COLUMN_HELP = (
    "pair: 0-based index of the base pair (the same in every configuration); "
    "fold: 0-based fold; same: 1 same identity, 0 different; "
    "a_side/b_side: unmasked|masked, the root the path is relative to; "
    "a/b: image paths relative to that root; identity_a/identity_b; "
    "source_line: line in the source pairs file (0 if drawn by maskface)"
)


@dataclass(frozen=True)
class PairRow:
    """One row of a protocol CSV."""

    pair: int
    fold: int
    same: bool
    a: str
    b: str
    identity_a: str
    identity_b: str
    source_line: int = 0
    a_side: str = "unmasked"
    b_side: str = "unmasked"


@dataclass
class Protocol:
    """The rows of one configuration of a protocol, and the pairs it had to leave out."""

    kind: str
    configuration: str
    rows: list[PairRow]
    problems: list[Problem] = field(default_factory=list)
    source: str = ""
    # What was drawn or decided on the way (fewer pairs than asked, folds dealt, ...).
    notes: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"{self.kind}_{self.configuration}.csv"


def configurations(
    kind: str, base: Sequence[PairRow], masked: MaskedCopy | None, *, seed: int, source: str,
    base_problems: Sequence[Problem] = (), notes: Sequence[str] = (),
) -> list[Protocol]:
    """The four configurations of ``base`` (only ``unmasked-unmasked`` without ``masked``).

    With several masked variants per image, each masked side draws one with a generator seeded
    by ``seed`` (the draws are made once, so every configuration uses the same variant).
    """
    protocols = [Protocol(kind, CONFIGURATIONS[0], list(base), list(base_problems), source,
                          list(notes))]
    if masked is None:
        return protocols
    rng = np.random.default_rng(seed)
    drawn: list[tuple[tuple[str | None, str], tuple[str | None, str]]] = [
        (masked.resolve(row.a, rng), masked.resolve(row.b, rng)) for row in base
    ]
    for configuration in CONFIGURATIONS[1:]:
        mask_a, mask_b = (side == "masked" for side in configuration.split("-"))
        protocol = Protocol(kind, configuration, [], list(base_problems), source, list(notes))
        for row, ((path_a, why_a), (path_b, why_b)) in zip(base, drawn, strict=True):
            reasons = [why for on, path, why in ((mask_a, path_a, why_a), (mask_b, path_b, why_b))
                       if on and path is None]
            if reasons:
                protocol.problems.append(Problem(source, row.source_line,
                                                 f"pair {row.pair}: {'; '.join(reasons)}"))
                continue
            protocol.rows.append(replace(
                row,
                a=path_a if mask_a and path_a else row.a, a_side="masked" if mask_a else "unmasked",
                b=path_b if mask_b and path_b else row.b, b_side="masked" if mask_b else "unmasked",
            ))
        protocols.append(protocol)
    return protocols


def pair_rows(
    dataset: Dataset, lists: Sequence[PairList], folds: str | int | Iterable[int] | None = None,
) -> tuple[list[PairRow], list[Problem], tuple[int, ...] | None]:
    """The rows of a dataset's pairs files (one fold per file after the first's), the problems
    of the kept folds, and the 1-based folds kept (``None``: all).

    Pairs are numbered across every file, kept or not, so a fold's rows carry the numbers
    they have in the whole protocol."""
    from maskface.datasets.lfw import parse_folds

    chosen = parse_folds(folds, sum(pairs.folds for pairs in lists))
    rows: list[PairRow] = []
    problems: list[Problem] = []
    index = 0
    for offset, pairs in enumerate(lists):
        problems.extend(p for p in pairs.problems
                        if chosen is None or _line_fold(pairs, p.line, offset) in (None, *chosen))
        for p in pairs.pairs:
            fold = p.fold + offset
            if chosen is None or fold + 1 in chosen:
                rows.append(PairRow(
                    pair=index, fold=fold, same=p.same,
                    a=dataset.relpath(p.a), b=dataset.relpath(p.b),
                    identity_a=p.a.identity or "", identity_b=p.b.identity or "",
                    source_line=p.line,
                ))
            index += 1
    return rows, problems, chosen


def _line_fold(pairs: PairList, line: int, offset: int) -> int | None:
    """The 1-based fold of a line of a pairs file with a header (``None`` if unknown)."""
    if line < 2 or not pairs.per_fold:
        return None
    return (line - 2) // (2 * pairs.per_fold) + offset + 1


def write_protocols(
    out: str | os.PathLike[str], protocols: Sequence[Protocol], *, roots: dict[str, Path],
    seed: int, description: str,
) -> list[Path]:
    """Write each protocol as ``<kind>_<configuration>.csv`` plus ``<kind>_problems.csv``
    (configuration, file, line, reason) under ``out``, atomically; return the paths."""
    if not protocols:
        raise DatasetError("There is no protocol to write.")
    out = Path(out)
    written = []
    for protocol in protocols:
        buffer = io.StringIO()
        for line in (
            f"maskface pair protocol {protocol.kind}, configuration {protocol.configuration}",
            description,
            f"columns: {_COLUMN_HELP}",
            *(f"root {side}: {path}" for side, path in roots.items()),
            f"seed: {seed}; pairs: {len(protocol.rows)}; left out: {len(protocol.problems)} "
            f"(see {protocol.kind}_problems.csv)",
            *(f"note: {note}" for note in protocol.notes),
        ):
            buffer.write(f"# {line}\n")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in protocol.rows:
            writer.writerow([r.pair, r.fold, int(r.same), r.a_side, r.a, r.b_side, r.b,
                             r.identity_a, r.identity_b, r.source_line])
        path = out / protocol.filename
        write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))
        written.append(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("configuration", "file", "line", "reason"))
    for protocol in protocols:
        for p in protocol.problems:
            writer.writerow((protocol.configuration, p.file, p.line, p.reason))
    path = out / f"{protocols[0].kind}_problems.csv"
    write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))
    return [*written, path]


def read_protocol(path: str | os.PathLike[str]) -> tuple[list[PairRow], dict[str, Path]]:
    """The rows of a protocol CSV and its roots (``{"unmasked": ..., "masked": ...}``)."""
    roots: dict[str, Path] = {}
    with open(path, newline="", encoding="utf-8") as f:
        lines = []
        for line in f:
            if line.startswith("# root "):
                side, _, where = line[len("# root "):].partition(": ")
                roots[side] = Path(where.rstrip("\n"))
            elif not line.startswith("#"):
                lines.append(line)
    rows = [
        PairRow(int(r["pair"]), int(r["fold"]), r["same"] == "1", r["a"], r["b"],
                r["identity_a"], r["identity_b"], int(r["source_line"]), r["a_side"],
                r["b_side"])
        for r in csv.DictReader(lines)
    ]
    return rows, roots


def protocol_identities(path: str | os.PathLike[str]) -> set[str]:
    """The identities (LFW: person names) of every image a protocol CSV, or a folder of
    them, compares; e.g. to keep a test protocol's people out of training.

    Identities come from the ``identity_a``/``identity_b`` columns; where those are empty
    (datasets without identities) from the image's folder, as in ``<Name>/<Name>_NNNN.jpg``."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.csv") if not p.stem.endswith("_problems"))
        if not files:
            raise DatasetError(f"{path} holds no protocol CSV ('maskface datasets protocols' "
                               "writes them).")
    elif path.is_file():
        files = [path]
    else:
        raise DatasetError(f"The protocol {path} does not exist.")
    people: set[str] = set()
    for file in files:
        try:
            rows, _ = read_protocol(file)
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{file} is not a maskface protocol CSV ({exc!r}).") from None
        for r in rows:
            for identity, image in ((r.identity_a, r.a), (r.identity_b, r.b)):
                name = identity or PurePosixPath(image).parent.name
                if name:
                    people.add(name)
    return people
