"""Run pair protocols (``maskface datasets protocols`` CSVs) through a recognizer.

Every image of every configuration is embedded once (:func:`embed_paths`, cached), so the
unmasked images shared by the four configurations cost one embedding. A pair whose image
failed to enrol under the ``exclude`` policy is left out of its configuration and listed in
``excluded``; the metrics are computed on the pairs that remain.

Scores are the negative Euclidean distance between unit-length embeddings, so higher means
more alike. (dlib's rule of thumb, distance < 0.6, is for its unnormalised descriptors; the
thresholds here are learnt on the training folds.)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskface.evaluation.embeddings import EmbeddingCache, EmbeddingResult, embed_paths
from maskface.evaluation.metrics import VerificationMetrics, verification_metrics
from maskface.protocols.base import PairRow, read_protocol
from maskface.recognizers.base import Recognizer

MIXED = "mixed"


@dataclass
class ConfigurationResult:
    """Scored pairs of one configuration and their metrics."""

    configuration: str
    protocol: str
    rows: list[PairRow]
    paths: list[tuple[str, str]]
    labels: np.ndarray
    folds: np.ndarray
    distances: np.ndarray
    methods: list[tuple[str, str]]
    styles: list[str]
    excluded: list[tuple[int, str]] = field(default_factory=list)
    metrics: VerificationMetrics | None = None
    by_style: dict[str, VerificationMetrics] = field(default_factory=dict)


def mask_style(path: str | os.PathLike[str]) -> str | None:
    """The mask style drawn on a masked image, from its JSON sidecar (``--save-json``);
    ``None`` without a sidecar or when its faces wear different styles."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            faces = json.loads(sidecar.read_text(encoding="utf-8")).get("faces", [])
            styles = {f["style"]["style"] for f in faces}
        except (ValueError, KeyError, TypeError):
            styles = set()
        if len(styles) == 1:
            return styles.pop()
    return None


def _manifest_styles(root: Path) -> dict[str, str]:
    """``{output path: style}`` from the manifest's ``info.styles`` when one style per row."""
    from maskface.batch.manifest import read_manifest
    from maskface.protocols.masked import MANIFEST_NAMES

    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            out = {}
            for row in read_manifest(root / name):
                styles = set(row.info.get("styles", []))
                if len(styles) == 1:
                    style = styles.pop()
                    out.update({o: style for o in row.outputs})
            return out
    return {}


def dealt_folds(labels: np.ndarray, k: int = 10) -> np.ndarray | None:
    """Folds for a protocol that has only one: pairs dealt in turn into ``k`` folds within
    each label, so that every fold, and every threshold-learning remainder, holds genuine and
    impostor pairs. ``None`` when there are not two pairs of each kind."""
    labels = np.asarray(labels, dtype=bool)
    k = min(k, int(labels.sum()), int((~labels).sum()))
    if k < 2:
        return None
    folds = np.empty(len(labels), np.int64)
    for value in (True, False):
        rows = np.flatnonzero(labels == value)
        folds[rows] = np.arange(len(rows)) % k
    return folds


def _pair_style(a_side: str, a: str, b_side: str, b: str, styles: dict[str, str | None]) -> str:
    masked = [styles.get(p) for side, p in ((a_side, a), (b_side, b)) if side == "masked"]
    if not masked:
        return "none"
    if any(s is None for s in masked):
        return "unknown"
    return masked[0] if len(set(masked)) == 1 else MIXED


def evaluate_protocols(
    protocol_files: Sequence[str | os.PathLike[str]],
    recognizer: Recognizer,
    *,
    cache: EmbeddingCache | None = None,
    fallback: str = "center",
    detector: str = "blazeface",
    upsample: int = 1,
    n_bootstrap: int = 1000,
    workers: int | None = None,
    progress: bool = False,
) -> tuple[list[ConfigurationResult], EmbeddingResult, dict]:
    """Score and measure each protocol CSV; returns the results, the embeddings and timings."""
    t0 = time.perf_counter()
    loaded = []
    for f in protocol_files:
        rows, roots = read_protocol(f)
        if not rows:
            raise ValueError(f"{f} has no pairs")
        name = Path(f).stem
        configuration = name.rsplit("_", 1)[-1]
        resolved = [(str(roots[r.a_side] / r.a), str(roots[r.b_side] / r.b)) for r in rows]
        loaded.append((name, configuration, rows, roots, resolved))
    all_paths = list(dict.fromkeys(p for *_, res in loaded for pair in res for p in pair))
    emb = embed_paths(all_paths, recognizer, cache=cache, fallback=fallback,
                      detector=detector, upsample=upsample, workers=workers,
                      progress=progress)
    t_embed = time.perf_counter() - t0
    index = emb.index()
    failed = dict(emb.failures)

    styles: dict[str, str | None] = {}
    for _, _, rows, roots, resolved in loaded:
        if "masked" not in roots:
            continue
        from_manifest = _manifest_styles(roots["masked"])
        for r, (pa, pb) in zip(rows, resolved, strict=True):
            for side, rel, p in ((r.a_side, r.a, pa), (r.b_side, r.b, pb)):
                if side == "masked" and p not in styles:
                    styles[p] = mask_style(p) or from_manifest.get(rel)

    results = []
    for name, configuration, rows, _, resolved in loaded:
        keep, excluded = [], []
        for i, (r, (pa, pb)) in enumerate(zip(rows, resolved, strict=True)):
            bad = [f"{p}: {failed[p]}" for p in (pa, pb) if not emb.ok[index[p]]]
            if bad:
                excluded.append((r.pair, "; ".join(bad)))
            else:
                keep.append(i)
        if not keep:
            raise ValueError(f"{name}: no pair left after excluding failures to enrol "
                             f"(first: {excluded[0][1]})")
        kept_rows = [rows[i] for i in keep]
        kept_paths = [resolved[i] for i in keep]
        ia = np.array([index[a] for a, _ in kept_paths], dtype=np.int64)
        ib = np.array([index[b] for _, b in kept_paths], dtype=np.int64)
        dist = np.linalg.norm(emb.embeddings[ia] - emb.embeddings[ib], axis=1).astype(np.float64)
        labels = np.array([r.same for r in kept_rows], dtype=bool)
        folds = np.array([r.fold for r in kept_rows], dtype=np.int64)
        pair_styles = [_pair_style(r.a_side, a, r.b_side, b, styles)
                       for r, (a, b) in zip(kept_rows, kept_paths, strict=True)]
        res = ConfigurationResult(
            configuration=configuration, protocol=name, rows=kept_rows, paths=kept_paths,
            labels=labels, folds=folds, distances=dist,
            methods=[(emb.methods[index[a]], emb.methods[index[b]]) for a, b in kept_paths],
            styles=pair_styles, excluded=excluded,
        )
        if len(np.unique(folds)) < 2:
            # One fold leaves no other fold to learn the accuracy threshold on.
            dealt = dealt_folds(labels)
            if dealt is None:
                raise ValueError(f"{name}: metrics need at least two genuine (same) and two "
                                 f"impostor (different) pairs; it has {int(labels.sum())} "
                                 f"and {int((~labels).sum())}")
            folds = dealt
        res.folds = folds
        res.metrics = verification_metrics(labels, -dist, folds, n_bootstrap=n_bootstrap)
        for style in sorted(set(pair_styles) - {"none", "unknown"}):
            sel = np.array([s == style for s in pair_styles])
            y = labels[sel]
            if y.all() or not y.any():
                continue
            f = folds[sel]
            # Per-style subsets may leave a fold one-sided; use its folds only if all hold
            # both labels, else let KFold split the subset.
            two_sided = all(y[f == k].any() and not y[f == k].all() for k in np.unique(f))
            style_folds = f if two_sided and len(np.unique(f)) > 1 else dealt_folds(y)
            if style_folds is None:
                continue
            res.by_style[style] = verification_metrics(
                y, -dist[sel], style_folds, n_bootstrap=n_bootstrap,
            )
        results.append(res)
    timings = {"embedding_s": t_embed, "total_s": time.perf_counter() - t0,
               "images": len(all_paths), "cached": emb.cached}
    return results, emb, timings
