"""Verification metrics on pair scores, the figures the face-recognition literature reports.

Scores are similarities: higher means "same person" (pass ``-distance`` for distances). Folds
come from scikit-learn splitters. The ROC points are those of
:func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False`` (a test checks this), computed
by :func:`roc_points` without its input checks, because a bootstrap needs thousands of them.

* :func:`kfold_accuracy`: LFW's protocol. For each fold the threshold that maximises accuracy
  on the other folds is applied to it; mean, sample std and standard error (std / sqrt(k)).
* :func:`val_at_far`: true accept rate at the loosest threshold whose false accept rate is at
  most ``far`` (VAL@FAR=1e-3).
* :func:`eer`: equal error rate, interpolated between ROC points.
* :func:`fnmr_at_fmr`: false non-match rate at a false match rate bound (FMR100 at 1e-2,
  FMR1000 at 1e-3, ZeroFMR at 0), as in the FVC / NIST reports.
* :func:`bootstrap_ci`: percentile confidence intervals from pairs resampled within folds and
  labels, so every resample keeps the protocol's structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.model_selection import KFold, PredefinedSplit


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be equal 1-D")
    if labels.all() or not labels.any():
        raise ValueError("metrics need both genuine (same) and impostor (different) pairs")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return labels, scores


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """(fpr, tpr, thresholds) at every distinct score, from accepting nothing (threshold
    +inf) to accepting all, for checked inputs (bool labels, float scores)."""
    order = np.argsort(scores, kind="stable")[::-1]
    ranked, genuine = scores[order], labels[order]
    # the last pair of each run of equal scores closes one point of the curve
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tp = np.r_[0, np.cumsum(genuine)[last]]
    fp = np.r_[0, last + 1 - tp[1:]]
    return fp / fp[-1], tp / tp[-1], np.r_[np.inf, ranked[last]]


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold (accept ``score >= t``) with the highest accuracy, and that accuracy.

    The threshold sits halfway between the chosen score and the next lower one, so it
    generalises to held-out scores instead of touching a training pair.
    """
    labels, scores = _check(labels, scores)
    fpr, tpr, thr = roc_points(labels, scores)
    pos, neg = labels.sum(), (~labels).sum()
    acc = (tpr * pos + (1 - fpr) * neg) / len(labels)
    i = int(np.argmax(acc))
    # thr[0] is +inf (accept nothing); the next lower distinct score is thr[i + 1].
    if i == 0:
        t = float(thr[1]) + 1e-6
    elif i + 1 < len(thr):
        t = float((thr[i] + thr[i + 1]) / 2)
    else:
        t = float(thr[i]) - 1e-6
    return t, float(acc[i])


@dataclass
class FoldAccuracy:
    """k-fold accuracy: per-fold accuracies and thresholds, mean, std (ddof=1), std error."""

    accuracies: list[float]
    thresholds: list[float]
    mean: float
    std: float
    stderr: float


def kfold_accuracy(
    labels: np.ndarray, scores: np.ndarray, folds: np.ndarray | None = None, k: int = 10
) -> FoldAccuracy:
    """LFW-style accuracy: threshold picked on k-1 folds, applied to the held-out fold.

    ``folds`` (a fold id per pair, as in LFW View 2) fixes the split; without it the pairs are
    split into ``k`` contiguous folds by :class:`sklearn.model_selection.KFold`.
    """
    labels, scores = _check(labels, scores)
    splitter = PredefinedSplit(np.asarray(folds)) if folds is not None else KFold(k)
    accs, thrs = [], []
    for train, test in splitter.split(scores):
        t, _ = best_threshold(labels[train], scores[train])
        accs.append(float(np.mean((scores[test] >= t) == labels[test])))
        thrs.append(t)
    a = np.array(accs)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return FoldAccuracy(accs, thrs, float(a.mean()), std, std / np.sqrt(len(a)))


def _roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = roc_points(labels, scores)
    return fpr, tpr


def _area(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def _tar_at(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    return float(tpr[fpr <= far].max())


def _eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    fnr = 1 - tpr
    diff = fpr - fnr  # rises from -1 (accept nothing) to +1 (accept all)
    i = int(np.argmax(diff >= 0))
    if diff[i] == 0 or i == 0:
        return float(fpr[i])
    # Intersect the segment between ROC points i-1 and i with fpr == fnr.
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def val_at_far(labels: np.ndarray, scores: np.ndarray, far: float = 1e-3) -> float:
    """True accept rate at the loosest threshold with false accept rate <= ``far``."""
    return _tar_at(*_roc(*_check(labels, scores)), far)


def fnmr_at_fmr(labels: np.ndarray, scores: np.ndarray, fmr: float) -> float:
    """False non-match rate at the loosest threshold with false match rate <= ``fmr``."""
    return 1.0 - val_at_far(labels, scores, fmr)


def eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate: where FMR equals FNMR, linearly interpolated on the ROC."""
    return _eer(*_roc(*_check(labels, scores)))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve."""
    return _area(*_roc(*_check(labels, scores)))


def headline_metrics(
    labels: np.ndarray, scores: np.ndarray, folds: np.ndarray | None = None
) -> dict[str, float]:
    """The headline metrics of one set of scored pairs (the ROC-based ones off one curve)."""
    labels, scores = _check(labels, scores)
    return {"accuracy": kfold_accuracy(labels, scores, folds).mean,
            **_roc_metrics(labels, scores)}


def _roc_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The metrics read off the ROC curve (checked inputs), computed once."""
    fpr, tpr = _roc(labels, scores)
    return {
        "val_far1e_3": _tar_at(fpr, tpr, 1e-3),
        "auc": _area(fpr, tpr),
        "eer": _eer(fpr, tpr),
        "fmr100": 1.0 - _tar_at(fpr, tpr, 1e-2),
        "fmr1000": 1.0 - _tar_at(fpr, tpr, 1e-3),
        "zero_fmr": 1.0 - _tar_at(fpr, tpr, 0.0),
    }


def bootstrap_ci(
    labels: np.ndarray,
    scores: np.ndarray,
    folds: np.ndarray | None = None,
    *,
    metrics: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]]
    | None = None,
    n: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals ``{metric: (low, high)}`` at confidence ``level``.

    ``metrics`` maps names to functions of (labels, scores, folds); the default is every
    headline metric (:func:`headline_metrics`).

    Pairs are resampled with replacement within each (fold, label) cell, so each resample
    keeps the fold sizes and the genuine/impostor balance the metrics depend on.
    """
    labels, scores = _check(labels, scores)
    if metrics is None:
        measure = headline_metrics
    else:
        def measure(y, s, f):
            return {name: fn(y, s, f) for name, fn in metrics.items()}
    cell_of = labels.astype(np.int64) if folds is None else np.asarray(folds) * 2 + labels
    cells = [np.flatnonzero(cell_of == c) for c in np.unique(cell_of)]
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {}
    for _ in range(n):
        idx = np.concatenate([c[rng.integers(len(c), size=len(c))] for c in cells])
        f = None if folds is None else np.asarray(folds)[idx]
        for name, value in measure(labels[idx], scores[idx], f).items():
            values.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    return {
        name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
        for name, v in values.items()
    }


@dataclass
class VerificationMetrics:
    """All headline metrics of one set of scored pairs (rates in [0, 1])."""

    pairs: int
    genuine: int
    impostor: int
    accuracy: float
    accuracy_std: float
    accuracy_stderr: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    val_far1e_3: float
    auc: float
    eer: float
    fmr100: float
    fmr1000: float
    zero_fmr: float
    ci: dict[str, list[float]] = field(default_factory=dict)
    ci_level: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def verification_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    folds: np.ndarray | None = None,
    *,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> VerificationMetrics:
    """Every headline metric of ``scores``, with bootstrap intervals (none if n_bootstrap=0)."""
    labels, scores = _check(labels, scores)
    fa = kfold_accuracy(labels, scores, folds)
    ci = {}
    if n_bootstrap > 0:
        ci = {k: list(v) for k, v in
              bootstrap_ci(labels, scores, folds, n=n_bootstrap, level=level, seed=seed).items()}
    return VerificationMetrics(
        pairs=len(labels), genuine=int(labels.sum()), impostor=int((~labels).sum()),
        accuracy=fa.mean, accuracy_std=fa.std, accuracy_stderr=fa.stderr,
        fold_accuracies=fa.accuracies, fold_thresholds=fa.thresholds,
        **_roc_metrics(labels, scores),
        ci=ci, ci_level=level,
    )
