"""Open-set identification metrics, as NIST's face recognition vendor tests define them.

A *mated* search has its person in the gallery; a *non-mated* one does not. Candidate lists
are ranked by score (for the gallery, an identity's best template score).

* rank-r identification rate (CMC): the share of mated searches whose mate is among the top
  r candidates, whatever the score.
* FPIR(T): the share of non-mated searches whose top candidate scores at least T.
* FNIR(T): the share of mated searches whose mate is not returned at rank 1 with a score of
  at least T (NIST's FNIR at rank 1).
* FNIR at FPIR = p: FNIR at the lowest threshold whose FPIR is at most p
  (:func:`maskface.gallery.threshold_at_fpir`, the same rule :meth:`Gallery.calibrate` uses).
* DET: FNIR against FPIR as the threshold sweeps.

Bootstrap intervals resample mated *people* (with all their searches: one person's probes are
not independent) and non-mated searches, with replacement. The resamples are drawn from the
seed and the probe structure only, so two configurations over the same probes get the same
resamples, and the interval of their difference is the paired one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskface.gallery.gallery import threshold_at_fpir

FPIRS: tuple[float, ...] = (0.01, 0.003, 0.001)
RANKS: tuple[int, ...] = (1, 5)


@dataclass
class OpenSetScores:
    """The outcome of every search of one configuration.

    ``mate_rank``: rank of the mate among the candidates (1-based), 0 when it is not in the
    top ``max_rank``. ``top1_score`` and ``top1_is_mate``: the first candidate of each mated
    search. ``person``: the mated person of each search (for the bootstrap). ``nonmated``:
    the top score of each non-mated search."""

    mate_rank: np.ndarray
    top1_score: np.ndarray
    top1_is_mate: np.ndarray
    person: np.ndarray
    nonmated: np.ndarray
    max_rank: int

    def __post_init__(self) -> None:
        n = len(self.mate_rank)
        if not (len(self.top1_score) == len(self.top1_is_mate) == len(self.person) == n):
            raise ValueError("mated arrays must have equal lengths")
        if n == 0 or len(self.nonmated) == 0:
            raise ValueError("open-set metrics need both mated and non-mated searches")


def fnir_at(scores: OpenSetScores, threshold: float, weights: np.ndarray | None = None) -> float:
    hit = scores.top1_is_mate & (scores.top1_score >= threshold)
    return 1.0 - float(np.average(hit, weights=weights))


def fpir_at(nonmated: np.ndarray, threshold: float) -> float:
    return float(np.mean(np.asarray(nonmated) >= threshold))


def _metrics(s: OpenSetScores, weights: np.ndarray | None, nonmated: np.ndarray,
             fpirs: tuple[float, ...], ranks: tuple[int, ...]) -> dict[str, float]:
    out = {}
    for r in ranks:
        out[f"rank{r}"] = float(np.average((s.mate_rank >= 1) & (s.mate_rank <= r),
                                           weights=weights))
    for p in fpirs:
        out[f"fnir_at_fpir_{p:g}"] = fnir_at(s, threshold_at_fpir(nonmated, p), weights)
    return out


def bootstrap_draws(s: OpenSetScores, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mated weights (n, mated searches), non-mated indices (n, non-mated searches)): one
    resample per row; people drawn with replacement give their searches their multiplicity."""
    rng = np.random.default_rng(seed)
    people, inverse = np.unique(s.person, return_inverse=True)
    counts = rng.multinomial(len(people), np.full(len(people), 1 / len(people)), size=n)
    weights = counts[:, inverse].astype(np.float64)
    nonmated = rng.integers(len(s.nonmated), size=(n, len(s.nonmated)))
    return weights, nonmated


def resampled_metrics(s: OpenSetScores, n: int, seed: int = 0, fpirs: tuple[float, ...] = FPIRS,
                      ranks: tuple[int, ...] = RANKS) -> dict[str, np.ndarray]:
    """Each metric over ``n`` bootstrap resamples (see the module docstring)."""
    weights, nm_idx = bootstrap_draws(s, n, seed)
    values: dict[str, list[float]] = {}
    for b in range(n):
        w = weights[b]
        if not w.any():  # cannot happen with at least one person, kept for safety
            continue
        for key, v in _metrics(s, w, s.nonmated[nm_idx[b]], fpirs, ranks).items():
            values.setdefault(key, []).append(v)
    return {k: np.asarray(v) for k, v in values.items()}


def interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def det_curve(s: OpenSetScores, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) at up to ``points`` thresholds spread over the scores' quantiles, plus the
    non-mated scores' own top values (where the low-FPIR end of the curve lives)."""
    all_scores = np.concatenate([s.top1_score, s.nonmated]).astype(np.float64)
    qs = np.quantile(all_scores, np.linspace(0, 1, points))
    top_nm = np.sort(s.nonmated)[::-1][: min(len(s.nonmated), 200)]
    thresholds = np.unique(np.concatenate([qs, np.nextafter(top_nm, np.inf)]))
    nm = np.sort(np.asarray(s.nonmated, np.float64))
    fpir = 1 - np.searchsorted(nm, thresholds, side="left") / len(nm)
    hit_scores = np.sort(np.asarray(s.top1_score, np.float64)[s.top1_is_mate])
    hits = len(hit_scores) - np.searchsorted(hit_scores, thresholds, side="left")
    fnir = 1 - hits / len(s.top1_score)
    return fpir, fnir


def cmc(s: OpenSetScores) -> list[float]:
    """Rank-r identification rate for r = 1..max_rank."""
    return [float(np.mean((s.mate_rank >= 1) & (s.mate_rank <= r)))
            for r in range(1, s.max_rank + 1)]


def open_set_metrics(s: OpenSetScores, *, fpirs: tuple[float, ...] = FPIRS,
                     ranks: tuple[int, ...] = RANKS, n_bootstrap: int = 1000,
                     level: float = 0.95, seed: int = 0) -> dict:
    """Rank-r rates, FNIR at each FPIR (with its threshold), CMC and DET, with bootstrap
    intervals (``ci``) unless ``n_bootstrap`` is 0."""
    point = _metrics(s, None, s.nonmated, fpirs, ranks)
    thresholds = {f"threshold_at_fpir_{p:g}": threshold_at_fpir(s.nonmated, p) for p in fpirs}
    fpir, fnir = det_curve(s)
    out = {**point, **thresholds, "mated": len(s.mate_rank),
           "mated_people": len(np.unique(s.person)), "nonmated": len(s.nonmated),
           "cmc": cmc(s), "det": {"fpir": fpir.tolist(), "fnir": fnir.tolist()},
           "ci": {}, "ci_level": level, "bootstrap": n_bootstrap}
    if n_bootstrap > 0:
        draws = resampled_metrics(s, n_bootstrap, seed, fpirs, ranks)
        out["ci"] = {k: interval(v, level) for k, v in draws.items()}
    return out


def paired_difference(a: OpenSetScores, b: OpenSetScores, *, n_bootstrap: int = 1000,
                      level: float = 0.95, seed: int = 0, fpirs: tuple[float, ...] = FPIRS,
                      ranks: tuple[int, ...] = RANKS) -> dict:
    """``b - a`` for each metric, with the paired bootstrap interval (same probes required)."""
    if not (np.array_equal(a.person, b.person) and len(a.nonmated) == len(b.nonmated)):
        raise ValueError("a paired difference needs the same probes in both configurations")
    pa = _metrics(a, None, a.nonmated, fpirs, ranks)
    pb = _metrics(b, None, b.nonmated, fpirs, ranks)
    out = {"difference": {k: pb[k] - pa[k] for k in pa}, "ci": {}, "ci_level": level}
    if n_bootstrap > 0:
        da = resampled_metrics(a, n_bootstrap, seed, fpirs, ranks)
        db = resampled_metrics(b, n_bootstrap, seed, fpirs, ranks)
        out["ci"] = {k: interval(db[k] - da[k], level) for k in da}
    return out
