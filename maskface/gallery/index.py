"""The gallery's vector index: faiss over unit-length templates, inner product = cosine.

Three kinds, chosen when the gallery is created (or rebuilt):

* ``flat``: :class:`faiss.IndexFlatIP`, exact; every probe is compared with every template.
  The default: at 128 dimensions it answers in a few milliseconds up to ~100k templates.
* ``hnsw``: :class:`faiss.IndexHNSWFlat`, a navigable small-world graph; approximate,
  logarithmic search, for galleries of millions. Removing templates rebuilds the graph.
* ``ivf``: :class:`faiss.IndexIVFFlat`, inverted lists over k-means cells; approximate, and
  trained on the templates it holds. Until there are :data:`IVF_MIN_TRAIN` templates the
  lists could not be trained well, so it searches exactly; it is trained when the gallery
  reaches that size and whenever it is rebuilt.

Template ids are the gallery's own (SQLite row ids), so faiss's answers map straight back to
the metadata. :func:`dumps` / :func:`loads` frame a serialized index with the generation of
the gallery it reflects, so a stale file (a process killed between the metadata commit and
the index write) is recognised and brought up to date instead of trusted.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

INDEX_KINDS: tuple[str, ...] = ("flat", "hnsw", "ivf")
IVF_MIN_TRAIN = 2048  # templates before an ivf index is trained (39 per list, 52 lists)
DEFAULT_OPTIONS: dict[str, dict[str, int]] = {
    "flat": {},
    # M=32 links per node and efSearch 128 keep recall@1 above 0.99 at 1M (benchmarks)
    "hnsw": {"m": 32, "ef_construction": 80, "ef_search": 128},
    # 0: chosen from the size when trained: nlist 4 sqrt(n), nprobe max(16, nlist / 32),
    # which keeps recall@1 near 0.96 at 1M templates (benchmarks)
    "ivf": {"nlist": 0, "nprobe": 0},
}
_MAGIC = b"MASKFACE-GALLERY-INDEX\n"
_FEW_QUERIES = 4  # searches of at most this many probes run on one thread


def _faiss():
    import faiss

    return faiss


def check_kind(kind: str) -> str:
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index {kind!r}; choose from {', '.join(INDEX_KINDS)}")
    return kind


def index_options(kind: str, options: dict | None = None) -> dict[str, int]:
    """The index's options: the defaults of ``kind`` updated with ``options`` (checked)."""
    merged = dict(DEFAULT_OPTIONS[check_kind(kind)])
    for key, value in (options or {}).items():
        if key not in merged:
            raise ValueError(f"{kind} index has no option {key!r}; "
                             f"options: {', '.join(merged) or 'none'}")
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"index option {key} must be a non-negative integer, got {value!r}")
        merged[key] = value
    return merged


@dataclass
class VectorIndex:
    """A faiss index of unit vectors keyed by template id (int64)."""

    kind: str
    dim: int
    options: dict[str, int] = field(default_factory=dict)
    _index: object = None
    _trained_ivf: bool = False

    def __post_init__(self) -> None:
        self.options = index_options(self.kind, self.options)
        if self._index is None:
            self._index = self._empty(0)

    # -- building -------------------------------------------------------------------------
    def _empty(self, n_expected: int):
        faiss = _faiss()
        if self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.options["m"], faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.options["ef_construction"]
            inner.hnsw.efSearch = self.options["ef_search"]
            return faiss.IndexIDMap2(inner)
        if self.kind == "ivf" and n_expected >= IVF_MIN_TRAIN:
            nlist = self.options["nlist"] or int(np.clip(4 * math.sqrt(n_expected), 16, 65536))
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.nprobe = min(self.options["nprobe"] or max(16, nlist // 32), nlist)
            return index
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    @classmethod
    def build(cls, kind: str, dim: int, ids: np.ndarray, vectors: np.ndarray,
              options: dict | None = None) -> VectorIndex:
        """An index of ``vectors`` (N, dim) under ``ids`` (N,), trained on them if ivf."""
        index = cls(kind, dim, dict(options or {}))
        index._index = index._empty(len(ids))
        index._trained_ivf = kind == "ivf" and len(ids) >= IVF_MIN_TRAIN
        if index._trained_ivf:
            vectors = _as_matrix(vectors, dim)
            # k-means on at most 64 points per list: more adds time, hardly quality
            nlist = index._index.nlist
            sample = vectors
            if len(vectors) > 64 * nlist:
                pick = np.random.default_rng(0).choice(len(vectors), 64 * nlist, replace=False)
                sample = vectors[np.sort(pick)]
            index._index.train(sample)
        index.add(ids, vectors)
        return index

    # -- contents -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def exact(self) -> bool:
        """Whether searches are exhaustive (flat, or an ivf index not trained yet)."""
        return self.kind == "flat" or (self.kind == "ivf" and not self._trained_ivf)

    def needs_training(self) -> bool:
        """An ivf index still searching exactly but now large enough to be trained."""
        return self.kind == "ivf" and not self._trained_ivf and len(self) >= IVF_MIN_TRAIN

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = _as_matrix(vectors, self.dim)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids):
            self._index.add_with_ids(vectors, ids)

    def can_remove(self) -> bool:
        """Whether :meth:`remove` works in place (hnsw graphs must be rebuilt instead)."""
        return self.kind != "hnsw"

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        if not self.can_remove():
            raise RuntimeError("an hnsw index cannot remove vectors; rebuild it")
        return int(self._index.remove_ids(ids))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (nq, k), best first; id -1 where fewer than k exist."""
        queries = _as_matrix(queries, self.dim)
        k = max(1, int(k))
        if self.kind == "hnsw":
            # the graph walk keeps efSearch candidates; fewer than k would cut the answer
            inner = _faiss().downcast_index(self._index.index)
            inner.hnsw.efSearch = max(self.options["ef_search"], k)
        if len(self) == 0:
            return (np.full((len(queries), k), -np.inf, np.float32),
                    np.full((len(queries), k), -1, np.int64))
        if len(queries) > _FEW_QUERIES:
            return self._index.search(queries, k)
        # One probe at a time runs on one OpenMP thread: splitting a single search over
        # threads cost 6x in latency on a busy 2-core machine (165 vs 28 ms at 1M templates,
        # benchmarks/RESULTS.md). The setting is the calling thread's own, and restored.
        faiss = _faiss()
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._index.search(queries, k)
        finally:
            faiss.omp_set_num_threads(threads)

    # -- serialisation --------------------------------------------------------------------
    def dumps(self, header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
        """The index as bytes, preceded by ``header`` (JSON) and this index's own settings,
        followed by ``arrays`` (1-D int64, e.g. the labels of the templates)."""
        faiss = _faiss()
        # sorted: the header's JSON lists them sorted, and the bytes follow that order
        arrays = {k: np.ascontiguousarray(v, dtype=np.int64)
                  for k, v in sorted((arrays or {}).items())}
        body = faiss.serialize_index(self._index).tobytes()
        head = {**header, "kind": self.kind, "dim": self.dim, "options": self.options,
                "trained_ivf": self._trained_ivf, "count": len(self), "body": len(body),
                "arrays": {k: len(v) for k, v in arrays.items()}}
        text = json.dumps(head, sort_keys=True).encode("utf-8")
        return b"".join([_MAGIC, struct.pack("<Q", len(text)), text, body,
                         *(v.tobytes() for v in arrays.values())])

    @classmethod
    def loads(cls, data: bytes) -> tuple[VectorIndex, dict, dict[str, np.ndarray]]:
        """(index, header, arrays) from :meth:`dumps`'s bytes; ``ValueError`` if they are
        not one."""
        faiss = _faiss()
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 8:
            raise ValueError("not a maskface gallery index")
        start = len(_MAGIC) + 8
        (n,) = struct.unpack("<Q", data[len(_MAGIC):start])
        try:
            head = json.loads(data[start:start + n].decode("utf-8"))
            at = start + n + head["body"]
            raw = faiss.deserialize_index(np.frombuffer(data, np.uint8, head["body"],
                                                        start + n))
            arrays = {}
            for key, length in sorted(head["arrays"].items()):
                arrays[key] = np.frombuffer(data, np.int64, length, at).copy()
                at += 8 * length
        except Exception as e:  # faiss raises RuntimeError on damaged bytes
            raise ValueError(f"damaged gallery index: {e}") from None
        index = cls(head["kind"], int(head["dim"]), dict(head["options"]), raw,
                    bool(head["trained_ivf"]))
        if len(index) != head["count"] or at != len(data):
            raise ValueError("damaged gallery index: sizes do not match")
        return index, head, arrays


def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"expected (N, {dim}) vectors, got {vectors.shape}")
    return vectors
