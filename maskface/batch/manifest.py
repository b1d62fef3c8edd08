"""The batch manifest: one row per input, kept as an append-only CSV journal.

Columns (:data:`COLUMNS`): ``input`` (path relative to the input root, with ``/``),
``status`` (:data:`STATUSES`), ``reason`` (why not ``ok``: a read-error code for
``unreadable``, ``ExceptionType: message`` for ``error``), ``outputs`` (``;``-joined paths
relative to the output root), ``seconds`` (wall time for that input) and ``info`` (a JSON object;
``info.output_base`` is set when the input's outputs are named after another name because a
sibling input's outputs took its own, as ``a.jpg`` and ``a.JPG`` would).

The manifest is valid UTF-8: a byte of a file name that is not valid UTF-8 is written as
``\\xNN`` (:func:`display_name`) and read back as the same byte.

The journal is only ever appended to, one row per finished input in a single unbuffered write,
so a run killed at any instant leaves every row but possibly a torn last one, which
:class:`Journal` cuts off when it reopens the file. An input whose latest row is ``error`` is
not done: a resumed run retries it and :meth:`Journal.close` then drops the superseded row.
A Parquet manifest is written from the journal once a run completes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskface.atomic import atomic_writer
from maskface.errors import BatchError

COLUMNS: tuple[str, ...] = ("input", "status", "reason", "outputs", "seconds", "info")
STATUSES: tuple[str, ...] = ("ok", "no_face", "unreadable", "error")
# Statuses that a resumed run does not redo.
FINAL_STATUSES: frozenset[str] = frozenset({"ok", "no_face", "unreadable"})

# Journal text is UTF-8. File names that are not valid UTF-8 reach Python with their bad bytes
# as lone surrogates (surrogateescape); they are written as \xNN so that the file stays valid
# UTF-8 for every reader (and Parquet accepts it), and turned back into the same bytes on reading.
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")
_PARQUET_BATCH = 65_536
# Python's csv reader refuses fields above 131072 characters by default; a row it could not
# read back would look like damage, so longer fields are refused when written.
_FIELD_MAX = 100_000


@dataclass(frozen=True)
class ManifestRow:
    """What happened to one input."""

    input: str
    status: str
    reason: str = ""
    outputs: tuple[str, ...] = ()
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> list[str]:
        """The row as CSV fields, in :data:`COLUMNS` order; ``ValueError`` if one is too long."""
        record = [
            display_name(self.input),
            self.status,
            display_name(self.reason),
            display_name(";".join(self.outputs)),
            f"{self.seconds:.4f}",
            info_json(self.info),
        ]
        for name, value in zip(COLUMNS, record, strict=True):
            if len(value) > _FIELD_MAX:
                raise ValueError(f"the manifest's {name} field would exceed {_FIELD_MAX} chars")
        return record

    @classmethod
    def from_record(cls, record: list[str]) -> ManifestRow:
        """Parse CSV fields; raise ``ValueError`` unless they form a complete, valid row."""
        if len(record) != len(COLUMNS):
            raise ValueError(f"expected {len(COLUMNS)} fields, got {len(record)}")
        name, status, reason, outputs, seconds, info = record
        if not name or status not in STATUSES:
            raise ValueError(f"bad input or status: {name!r}, {status!r}")
        parsed = json.loads(info)
        if not isinstance(parsed, dict):
            raise ValueError("info is not a JSON object")
        return cls(
            input=_undisplay(name),
            status=status,
            reason=reason,
            outputs=tuple(_undisplay(outputs).split(";")) if outputs else (),
            seconds=float(seconds),
            info=parsed,
        )


def display_name(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name (lone surrogates) written as ``\\xNN``:
    printable, and valid UTF-8 for CSV, JSON and Parquet readers."""
    if text.isascii():
        return text
    return text.encode(_ENCODING, _ERRORS).decode(_ENCODING, "backslashreplace")


def _undisplay(text: str) -> str:
    """The inverse of :func:`display_name` (a file name with a literal ``\\x80``..``\\xff``,
    which needs a backslash in the name, is the one ambiguity)."""
    if "\\x" not in text:
        return text
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), text)


def info_json(info: dict[str, Any]) -> str:
    """The compact JSON of an ``info`` dict; raises unless it is a strictly JSON-able dict.

    Characters are written as themselves, except when a string holds bytes of a non-UTF-8
    file name: the text is then all ASCII, with ``\\uXXXX`` escapes that read back exactly.
    """
    if not isinstance(info, dict):
        raise TypeError(f"info must be a dict, not {type(info).__name__}")
    text = json.dumps(
        info, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        text.encode(_ENCODING)
    except UnicodeEncodeError:
        text = json.dumps(info, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text


class Journal:
    """The CSV journal of a run: knows which inputs are done and appends one row at a time.

    With ``resume`` an existing journal is kept (after cutting off a torn last row) and its
    rows count as done; otherwise it is started afresh.
    """

    def __init__(self, path: str | os.PathLike[str], *, resume: bool) -> None:
        self.path = Path(path)
        # input -> status of its latest row; statuses are shared strings, so this stays small.
        self._latest: dict[str, str] = {}
        # Inputs with more than one row (errors retried), which compact() has to thin out.
        self._repeated: set[str] = set()
        # input -> info.output_base, for the few inputs whose outputs were renamed.
        self._bases: dict[str, str] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists():
            self._reopen()
        else:
            _write_header_only(self.path)
        self._fd = _open_for_append(self.path)

    def is_done(self, name: str) -> bool:
        """Whether ``name`` already has a row that a resumed run keeps."""
        return self._latest.get(name) in FINAL_STATUSES

    def output_base(self, name: str) -> str | None:
        """The name ``name``'s outputs were named after, when not its own (see the module)."""
        return self._bases.get(name)

    def counts(self) -> dict[str, int]:
        """How many inputs have each status in their latest row."""
        counts = dict.fromkeys(STATUSES, 0)
        for status in self._latest.values():
            counts[status] += 1
        return counts

    def append(self, row: ManifestRow) -> None:
        """Write one row with a single unbuffered write, so that it survives a kill."""
        data = _encode_record(row.to_record())
        # One write(2) per row: a row is only ever torn by the process dying mid-call (or a
        # full disk), never by a Python-level interruption between two buffered writes.
        if os.write(self._fd, data) != len(data):
            raise OSError(f"short write to {self.path} (disk full?)")
        self._note(row)

    def close(self, *, compact: bool = False) -> None:
        """Close the journal; with ``compact``, keep only the latest row of each input."""
        os.close(self._fd)
        if not (compact and self._repeated):
            return
        last: dict[str, int] = {}
        for index, (_, row) in enumerate(_scan(self.path)):
            if row.input in self._repeated:
                last[row.input] = index
        with atomic_writer(self.path) as f:
            f.write(_encode_record(list(COLUMNS)))
            for index, (_, row) in enumerate(_scan(self.path)):
                if last.get(row.input, index) == index:
                    f.write(_encode_record(row.to_record()))

    def _note(self, row: ManifestRow) -> None:
        if row.input in self._latest:
            self._repeated.add(row.input)
        self._latest[row.input] = row.status
        base = row.info.get("output_base")
        if isinstance(base, str):
            self._bases[row.input] = base
        else:
            self._bases.pop(row.input, None)

    def _reopen(self) -> None:
        with open(self.path, "rb") as f:
            header = f.readline()
        if not header.endswith(b"\n"):
            # Killed while writing the header: nothing to keep.
            _write_header_only(self.path)
            return
        if header.decode(_ENCODING, _ERRORS).rstrip("\r\n") != ",".join(COLUMNS):
            raise BatchError(
                f"{self.path} is not a maskface manifest (its columns differ); "
                "move it away or run afresh (resume=False) to overwrite it."
            )
        end = len(header)
        for offset, row in _scan(self.path):
            self._note(row)
            end = offset
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == end:
                return
            f.seek(-1, os.SEEK_END)
            complete = f.read(1) == b"\n"
        if complete:
            # Whole lines that do not parse were not torn by a kill: someone edited the file.
            raise BatchError(
                f"{self.path} is damaged after byte {end} (a row that does not parse); "
                "repair it, or run afresh (resume=False) to overwrite it."
            )
        # A row torn by a killed run: cut it off before appending after it.
        os.truncate(self.path, end)


def read_manifest(path: str | os.PathLike[str]) -> Iterator[ManifestRow]:
    """Yield the rows of a manifest (CSV journal or Parquet), skipping a torn last row."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        pq = _pyarrow_parquet()
        for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
            for item in batch.to_pylist():
                yield ManifestRow.from_record([str(item[c]) for c in COLUMNS])
    else:
        for _, row in _scan(path):
            yield row


def csv_to_parquet(csv_path: str | os.PathLike[str], parquet_path: str | os.PathLike[str]) -> None:
    """Convert a CSV journal into a Parquet manifest (atomically, in bounded memory)."""
    pa = _pyarrow()
    pq = _pyarrow_parquet()
    schema = pa.schema([(c, pa.float64() if c == "seconds" else pa.string()) for c in COLUMNS])
    with atomic_writer(parquet_path) as f, pq.ParquetWriter(f, schema) as writer:
        batch: list[dict[str, str | float]] = []
        for _, row in _scan(csv_path):
            batch.append(_parquet_record(row))
            if len(batch) == _PARQUET_BATCH:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))


def parquet_to_csv(parquet_path: str | os.PathLike[str], csv_path: str | os.PathLike[str]) -> None:
    """Turn a Parquet manifest back into a CSV journal, so that a run can resume from it."""
    with atomic_writer(csv_path) as f:
        f.write(_encode_record(list(COLUMNS)))
        for row in read_manifest(parquet_path):
            f.write(_encode_record(row.to_record()))


def require_pyarrow() -> None:
    """Raise :class:`BatchError` with an install hint unless pyarrow can be imported."""
    _pyarrow_parquet()


def _scan(path: str | os.PathLike[str]) -> Iterator[tuple[int, ManifestRow]]:
    """Yield (byte offset just past the row, row) for each complete row after the header.

    Stops at the first row that is torn (no final newline) or does not parse.
    """
    with open(path, "rb") as f:
        end = 0

        def lines() -> Iterator[str]:
            nonlocal end
            for raw in f:
                if not raw.endswith(b"\n"):
                    return
                end += len(raw)
                yield raw.decode(_ENCODING, _ERRORS)

        # The reader pulls lines only as it needs them, so `end` is exact after each row.
        reader = csv.reader(lines(), strict=True)
        try:
            next(reader, None)
            for record in reader:
                row = ManifestRow.from_record(record)
                yield end, row
        except (csv.Error, ValueError):
            return


def _open_for_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))


def _write_header_only(path: Path) -> None:
    with atomic_writer(path) as f:
        f.write(_encode_record(list(COLUMNS)))


def _encode_record(record: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(record)
    return buffer.getvalue().encode(_ENCODING, _ERRORS)


def _parquet_record(row: ManifestRow) -> dict[str, str | float]:
    record: dict[str, str | float] = dict(zip(COLUMNS, row.to_record(), strict=True))
    record["seconds"] = float(record["seconds"])
    return record


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise BatchError(
            "A Parquet manifest needs pyarrow: pip install 'maskface[parquet]' "
            "(or name the manifest *.csv)."
        ) from None
    return pyarrow


def _pyarrow_parquet() -> Any:
    _pyarrow()
    import pyarrow.parquet

    return pyarrow.parquet
