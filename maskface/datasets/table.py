"""A CSV or Parquet table of image paths and labels.

``root`` is the table file (``.csv``, ``.tsv`` or ``.parquet``), or a folder holding exactly one
``dataset.csv``/``labels.csv``/``manifest.csv``/``*.parquet`` of that name. The ``path`` column
(relative to the table's folder, or absolute) is required; ``identity`` is optional; every other
column becomes an attribute (strings from CSV, native types from Parquet). Rows naming a missing
image are problems with their line (CSV: the file line; Parquet: the 1-based row). Parquet needs
pyarrow (``pip install 'maskface[parquet]'``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from maskface.datasets.base import Dataset, DatasetError, Problem, ProtocolFileError, Sample

TABLE_NAMES: tuple[str, ...] = ("dataset.csv", "labels.csv", "dataset.parquet",
                                "labels.parquet")


class TableDataset(Dataset):
    """Samples listed in a table: ``path`` [, ``identity``] [, attribute columns ...]."""

    name = "table"
    description = "CSV/Parquet table of image paths + labels (path, identity, ...)"
    root_may_be_file = True

    def __init__(
        self, root: str | os.PathLike[str], *, path_column: str = "path",
        identity_column: str = "identity",
    ) -> None:
        super().__init__(root)
        if self.root.is_dir():
            found = [self.root / n for n in TABLE_NAMES if (self.root / n).is_file()]
            if len(found) != 1:
                raise DatasetError(
                    f"{self.root} should hold one table named {' or '.join(TABLE_NAMES)}; "
                    f"found {len(found)}: pass the table file itself."
                )
            self.table = found[0]
        else:
            self.table = self.root
        if self.table.suffix.lower() not in (".csv", ".tsv", ".parquet"):
            raise DatasetError(f"{self.table} is not a .csv, .tsv or .parquet table.")
        self.path_column = path_column
        self.identity_column = identity_column

    @property
    def image_root(self) -> Path:
        return self.table.parent

    @property
    def protocol_files(self) -> list[Path]:
        return [self.table]

    def _rows(self) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
        if self.table.suffix.lower() == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise DatasetError(
                    "Reading a Parquet table needs pyarrow: pip install 'maskface[parquet]' "
                    "(or give a CSV table)."
                ) from None
            data = pq.read_table(self.table)
            return data.column_names, list(enumerate(data.to_pylist(), 1))
        with open(self.table, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t" if self.table.suffix == ".tsv" else ",")
            rows = [(reader.line_num, row) for row in reader]
            return list(reader.fieldnames or []), rows

    def _scan(self) -> tuple[list[Sample], list[Problem]]:
        columns, rows = self._rows()
        if self.path_column not in columns:
            raise ProtocolFileError(
                f"The table {self.table.name} has no {self.path_column!r} column "
                f"(columns: {', '.join(columns) or 'none'})."
            )
        samples: list[Sample] = []
        problems: list[Problem] = []
        for line, row in rows:
            text = row.get(self.path_column)
            if not text:
                problems.append(Problem(self.table.name, line, "empty path"))
                continue
            path = self.image_root / str(text)
            if not path.is_file():
                problems.append(Problem(self.table.name, line, f"names missing image {text}"))
                continue
            identity = row.get(self.identity_column)
            attributes = {k: v for k, v in row.items()
                          if k not in (self.path_column, self.identity_column)}
            samples.append(Sample(path, None if identity in (None, "") else str(identity),
                                  attributes))
        return samples, problems
