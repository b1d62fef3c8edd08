"""Glue for the command line: labelled (masked) UTKFace embeddings, trained models on disk."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from maskface.attributes.baseline import BaselineModel
from maskface.attributes.features import cached_embeddings
from maskface.attributes.study import MaskedPairs, load_masked_pairs


def pair_subset(pairs: MaskedPairs, limit: int | None, seed: int = 0) -> MaskedPairs:
    """A seeded random subset of ``limit`` pairs (all of them, in order, without a limit)."""
    if not limit or limit >= len(pairs.attributes):
        return pairs
    keep = np.sort(np.random.default_rng(seed).permutation(len(pairs.attributes))[:limit])
    return MaskedPairs([pairs.attributes[i] for i in keep], [pairs.unmasked[i] for i in keep],
                       [pairs.masked[i] for i in keep], [pairs.styles[i] for i in keep],
                       pairs.excluded)


def pair_features(
    data: str | os.PathLike[str],
    masked: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[MaskedPairs, dict[str, np.ndarray], dict[str, Any]]:
    """Pairs, their ``unmasked``/``masked`` embeddings (cached in ``cache_dir``) and timings."""
    pairs = pair_subset(load_masked_pairs(data, masked), limit, seed)
    cache = Path(cache_dir)
    clean = cached_embeddings(cache / "unmasked.npz", pairs.unmasked, progress=progress)
    # Same landmarks for the masked copy: identical chip geometry, only the mask differs.
    covered = cached_embeddings(cache / "masked.npz", pairs.masked, landmarks=clean.landmarks,
                                progress=progress)
    info = {"images": len(pairs.attributes), "excluded": pairs.excluded,
            "detector_fallback": int(clean.fallback.sum()),
            "embedding_seconds": round(clean.seconds + covered.seconds, 1)}
    return pairs, {"unmasked": clean.embeddings, "masked": covered.embeddings}, info


def save_model(model: BaselineModel, path: str | os.PathLike[str], meta: dict[str, Any]) -> Path:
    """Pickle a fitted model with what it was trained on (only load files you trust)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump({"model": model, "meta": meta}, fh)
    return path


def load_model(path: str | os.PathLike[str]) -> tuple[BaselineModel, dict[str, Any]]:
    """Read a model written by :func:`save_model`."""
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    return data["model"], data["meta"]
