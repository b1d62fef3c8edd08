"""Glue for the command line: labelled (masked) UTKFace embeddings and chips, trained models
on disk, and one fine-tuning run scored like the baseline study."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskface.atomic import atomic_writer
from maskface.attributes.baseline import BaselineModel
from maskface.attributes.features import Chips, Features, cached_chips, embed_images
from maskface.attributes.study import (
    CONDITIONS,
    MaskedPairs,
    breakdown_groups,
    load_masked_pairs,
    strata,
    style_counts,
)

# The embedding cache file in the study's cache folder (the SQLite cache of maskface eval).
EMBEDDING_CACHE = "embeddings.sqlite"

if TYPE_CHECKING:  # torch is imported only by the fine-tuning commands
    import torch

    from maskface.attributes.finetune import FineTuneConfig, FineTuned


def pair_subset(pairs: MaskedPairs, limit: int | None, seed: int = 0) -> MaskedPairs:
    """A seeded random subset of ``limit`` pairs (all of them, in order, without a limit)."""
    if not limit or limit >= len(pairs.attributes):
        return pairs
    keep = np.sort(np.random.default_rng(seed).permutation(len(pairs.attributes))[:limit])
    return MaskedPairs([pairs.attributes[i] for i in keep], [pairs.unmasked[i] for i in keep],
                       [pairs.masked[i] for i in keep], [pairs.styles[i] for i in keep],
                       pairs.excluded)


def _info(pairs: MaskedPairs, clean: Features | Chips, covered: Features | Chips,
          timing: str) -> dict[str, Any]:
    """What :func:`pair_features` and :func:`pair_chips` report besides the arrays."""
    return {"images": len(pairs.attributes), "excluded": pairs.excluded,
            "detector_fallback": int(clean.fallback.sum()),
            timing: round(clean.seconds + covered.seconds, 1)}


def pair_features(
    data: str | os.PathLike[str],
    masked: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[MaskedPairs, dict[str, np.ndarray], dict[str, Any]]:
    """Pairs, their ``unmasked``/``masked`` embeddings and timings.

    Embeddings are cached in ``cache_dir/embeddings.sqlite``, the SQLite cache ``maskface
    eval`` keeps (pass that file as its ``--cache`` to share them). The masked copies are
    cut where their originals' faces are: identical chip geometry, only the mask differs.
    """
    from maskface.evaluation.embeddings import EmbeddingCache

    pairs = pair_subset(load_masked_pairs(data, masked), limit, seed)
    cache = EmbeddingCache(Path(cache_dir) / EMBEDDING_CACHE)
    n = len(pairs.unmasked)
    try:
        # One pass over both copies keeps the detection workers busy throughout.
        both = embed_images([*pairs.unmasked, *pairs.masked], cache=cache,
                            align_with=[None] * n + list(pairs.unmasked), progress=progress)
    finally:
        cache.close()
    clean = Features(both.embeddings[:n], both.fallback[:n], both.seconds / 2)
    covered = Features(both.embeddings[n:], both.fallback[n:], both.seconds / 2)
    info = _info(pairs, clean, covered, "embedding_seconds")
    return pairs, {"unmasked": clean.embeddings, "masked": covered.embeddings}, info


def save_model(model: BaselineModel, path: str | os.PathLike[str], meta: dict[str, Any]) -> Path:
    """Pickle a fitted model with what it was trained on (only load files you trust)."""
    path = Path(path)
    with atomic_writer(path) as fh:
        pickle.dump({"model": model, "meta": meta}, fh)
    return path


def load_model(path: str | os.PathLike[str]) -> tuple[BaselineModel, dict[str, Any]]:
    """Read a model written by :func:`save_model`."""
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    return data["model"], data["meta"]


def pair_chips(
    data: str | os.PathLike[str],
    masked: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[MaskedPairs, dict[str, np.ndarray], dict[str, Any]]:
    """Pairs and their ``unmasked``/``masked`` uint8 chips (cached in ``cache_dir``), and timings.

    The chips are the ones :func:`pair_features` embeds, and the masked copy is cut where
    its original's face is.
    """
    pairs = pair_subset(load_masked_pairs(data, masked), limit, seed)
    cache = Path(cache_dir)
    clean = cached_chips(cache / "chips-unmasked.npz", pairs.unmasked, progress=progress)
    covered = cached_chips(cache / "chips-masked.npz", pairs.masked, align_with=pairs.unmasked,
                           progress=progress)
    info = _info(pairs, clean, covered, "chip_seconds")
    return pairs, {"unmasked": clean.chips, "masked": covered.chips}, info


def run_finetune(
    pairs: MaskedPairs,
    chips: dict[str, np.ndarray],
    target: str,
    config: FineTuneConfig,
    *,
    train_on: str = "masked",
    test_on: Sequence[str] = CONDITIONS,
    split_kind: str = "uniform",
    seed: int = 0,
    split_dir: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
) -> tuple[FineTuned, dict[str, Any]]:
    """Fine-tune on the ``train_on`` chips of a split, score the test part of ``test_on``.

    The split is the baseline study's (same kind, seed and stratification), so the figures
    compare directly. Returns the run and a report dict in the study's format (for
    :func:`~maskface.attributes.report.write_report`): ``meta``, ``summary``, ``results``.
    """
    from maskface.attributes.finetune import default_device, finetune
    from maskface.attributes.metrics import evaluate
    from maskface.attributes.splits import make_split, save_split
    from maskface.attributes.targets import target_values

    for cond in (train_on, *test_on):
        if cond not in CONDITIONS:
            raise ValueError(f"unknown condition {cond!r}; choose from {CONDITIONS}")
    device = device or default_device()
    split = make_split(strata(pairs.attributes, target), split_kind, seed=seed)
    split_csv = None
    if split_dir is not None:
        split_csv = save_split(split, Path(split_dir) / f"{split_kind}-{target}-seed{seed}.csv",
                               [p.name for p in pairs.unmasked])
    y = target_values(pairs.attributes, target)
    x = chips[train_on]
    run = finetune(x[split.train], y[split.train], target, x[split.val], y[split.val], config,
                   device, progress=progress)
    name = (f"{config.settings()['backbone']} fine-tuned (epoch {run.best_epoch} of "
            f"{len(run.history)})")
    results: dict[str, Any] = {}
    summary: dict[str, dict[str, float]] = {}
    for cond in test_on:
        start = time.perf_counter()
        pred = run.predict(chips[cond][split.test])
        seconds = time.perf_counter() - start
        groups = breakdown_groups(pairs.attributes, split.test,
                                  pairs.styles if cond == "masked" else None)
        scores = evaluate(target, y[split.test], pred, groups)
        key = f"train_{train_on}/test_{cond}"
        results[key] = {
            "model": name,
            "val_scores": {f"epoch {h['epoch']}": h["val_score"] for h in run.history
                           if "val_score" in h},
            "fit_seconds": round(run.seconds, 1), "predict_seconds": round(seconds, 2),
            **scores,
        }
        metric = "mae" if target == "age" else "accuracy"
        summary[key] = {target: scores["overall"][metric]}
        if target == "age":
            summary[key]["age_rmse"] = scores["overall"]["rmse"]
    epochs = [h["train_seconds"] for h in run.history]
    meta = {"split": split_kind, "seed": seed, "fractions": [0.7, 0.1, 0.2],
            "samples": len(pairs.attributes), "split_sizes": {target: split.sizes()},
            "targets": [target], "styles": style_counts(pairs.styles), "train_on": train_on,
            "test_on": list(test_on), "device": str(device), "config": config.settings(),
            "history": run.history, "best_epoch": run.best_epoch,
            "train_seconds": round(run.seconds, 1),
            "seconds_per_epoch": round(float(np.mean(epochs)), 1) if epochs else 0.0,
            "split_csv": str(split_csv) if split_csv else None}
    return run, {"meta": meta, "summary": summary, "results": {target: results}}
