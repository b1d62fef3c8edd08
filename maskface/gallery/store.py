"""The gallery's metadata and templates in one SQLite file, the gallery's source of truth.

Every change is one SQLite transaction that also bumps ``generation``, so a process killed
mid-write leaves the file as it was before or after the whole change (SQLite's journal rolls
an unfinished transaction back on the next open). Template ids are ``AUTOINCREMENT``: never
reused, so "templates added since" is ``id > last id seen``, and removals are logged with their
generation, which is how a stale faiss index file is brought up to date cheaply.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL,
    source TEXT NOT NULL,       -- file path or "array"
    digest TEXT NOT NULL,       -- blake2b of the reference image's pixels or file bytes
    variant TEXT NOT NULL,      -- "photo", or "mask:<style>:<renderer>:<k>" for synthetic masks
    masked INTEGER NOT NULL,    -- whether the face in the template wears a mask
    box TEXT NOT NULL,          -- JSON [x0, y0, x1, y1] of the face in the reference image
    created TEXT NOT NULL,
    vector BLOB NOT NULL        -- float32, unit length
);
CREATE INDEX templates_identity ON templates (identity);
CREATE TABLE removals (id INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
"""
# Variants of templates drawn by maskface (mask-aware enrolment) rather than taken from a
# photo start with this; bare probes skip them.
SYNTHETIC_PREFIX = "mask:"
_SYNTHETIC = f"variant LIKE '{SYNTHETIC_PREFIX}%'"


def is_synthetic(variant: str) -> bool:
    """Whether a template's variant name marks a synthetic masked variant."""
    return variant.startswith(SYNTHETIC_PREFIX)


@dataclass(frozen=True)
class TemplateRow:
    """One template as stored (without its vector)."""

    id: int
    identity: str
    source: str
    digest: str
    variant: str
    masked: bool
    box: tuple[float, ...]
    created: str


@dataclass
class NewTemplate:
    """A template about to be stored."""

    identity: str
    source: str
    digest: str
    variant: str
    masked: bool
    box: Sequence[float]
    vector: np.ndarray


class Store:
    """SQLite access for one gallery file; thread-safe (one lock around the connection)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        uri = f"file:{self.path.as_posix()}?mode={'ro' if readonly else 'rw'}"
        # autocommit mode: write transactions are opened by _write(), BEGIN IMMEDIATE
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30.0,
                                   isolation_level=None)
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, taken before reading what it changes, so two processes
        enrolling at once queue instead of interleaving."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @classmethod
    def initialise(cls, path: Path, meta: dict) -> None:
        """Write a new gallery file at ``path`` with ``meta`` (the caller renames it in)."""
        db = sqlite3.connect(path)
        try:
            with db:
                db.executescript(_SCHEMA)
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in
                                {**meta, "format": FORMAT, "generation": 0}.items()])
        finally:
            db.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A read transaction: what is read inside it is one consistent snapshot."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta -----------------------------------------------------------------------------
    def meta(self) -> dict:
        with self._lock:
            return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values) -> None:
        with self._write():
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in values.items()])

    def generation(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(json.loads(row[0]))

    def _bump(self) -> int:
        gen = self.generation() + 1
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (json.dumps(gen),))
        return gen

    # -- templates ------------------------------------------------------------------------
    def add(self, items: Sequence[NewTemplate]) -> tuple[np.ndarray, int]:
        """Store ``items`` in one transaction; returns (their ids, the new generation)."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rows = [(t.identity, t.source, t.digest, t.variant, int(bool(t.masked)),
                 json.dumps([round(float(v), 2) for v in t.box]), now,
                 np.ascontiguousarray(t.vector, dtype=np.float32).tobytes()) for t in items]
        with self._write():
            ids = self._insert(rows)
            gen = self._bump()
        return np.array(ids, dtype=np.int64), gen

    def _insert(self, rows: list[tuple]) -> list[int]:
        # one statement per row: a failure part-way (tests simulate one) must roll back all
        ids = []
        for row in rows:
            cur = self._db.execute(
                "INSERT INTO templates (identity, source, digest, variant, masked, box, "
                "created, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
            ids.append(int(cur.lastrowid))
        return ids

    def remove_identity(self, identity: str) -> tuple[np.ndarray, int]:
        """Delete ``identity``'s templates; returns (their ids, the new generation)."""
        with self._write():
            ids = np.array([r[0] for r in self._db.execute(
                "SELECT id FROM templates WHERE identity = ?", (identity,))], dtype=np.int64)
            if not len(ids):
                return ids, self.generation()
            gen = self._bump()
            self._db.execute("DELETE FROM templates WHERE identity = ?", (identity,))
            self._db.executemany("INSERT INTO removals VALUES (?, ?)",
                                 [(int(i), gen) for i in ids])
        return ids, gen

    def removed_since(self, generation: int) -> np.ndarray:
        with self._lock:
            return np.array([r[0] for r in self._db.execute(
                "SELECT id FROM removals WHERE generation > ?", (generation,))], dtype=np.int64)

    def identities(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute(
                "SELECT identity, COUNT(*) FROM templates GROUP BY identity ORDER BY identity"))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM templates").fetchone()[0])

    def digests(self, identity: str) -> set[str]:
        """Digests of the reference images ``identity`` was enrolled from."""
        with self._lock:
            return {r[0] for r in self._db.execute(
                "SELECT DISTINCT digest FROM templates WHERE identity = ?", (identity,))}

    def templates(self, identity: str | None = None) -> list[TemplateRow]:
        sql = "SELECT id, identity, source, digest, variant, masked, box, created FROM templates"
        args: tuple = ()
        if identity is not None:
            sql, args = sql + " WHERE identity = ?", (identity,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [TemplateRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), tuple(json.loads(r[6])),
                            r[7]) for r in rows]

    def labels(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(template ids sorted, identity of each, whether each is a synthetic masked
        variant): what a search maps its hits back with."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, identity, {_SYNTHETIC} FROM templates ORDER BY id").fetchall()
        return (np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows],
                np.array([r[2] for r in rows], dtype=bool))

    def rows(self, dim: int, *, after: int = 0, chunk: int = 50_000
             ) -> Iterator[tuple[np.ndarray, list[str], np.ndarray, np.ndarray]]:
        """(ids, identities, vectors, synthetic flags) of the templates with id > ``after``,
        in chunks, in id order."""
        last = after
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT id, identity, vector, {_SYNTHETIC} FROM templates WHERE id > ? "
                    "ORDER BY id LIMIT ?", (last, chunk)).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
            yield (ids, [r[1] for r in rows], vecs.reshape(len(rows), dim),
                   np.array([r[3] for r in rows], dtype=bool))
            last = int(ids[-1])

    def last_id(self) -> int:
        """The largest template id ever given (removed ones included)."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'templates'").fetchone()
        return int(row[0]) if row else 0
