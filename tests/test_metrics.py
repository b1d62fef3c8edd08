"""Metrics against cases whose answers are known by hand."""

import numpy as np
import pytest

from maskface.evaluation.metrics import (
    auc,
    best_threshold,
    bootstrap_ci,
    eer,
    fnmr_at_fmr,
    kfold_accuracy,
    roc_points,
    val_at_far,
    verification_metrics,
)


def test_roc_points_are_sklearns_with_ties():
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(5)
    for decimals in (0, 1, 3):  # 0 decimals: most scores tie with others
        labels = rng.integers(0, 2, 400).astype(bool)
        scores = np.round(rng.normal(labels * 1.5, 1.0), decimals)
        expected = roc_curve(labels, scores, drop_intermediate=False)
        for ours, theirs in zip(roc_points(labels, scores), expected, strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
        assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_perfect_separation():
    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert auc(labels, scores) == 1.0
    assert eer(labels, scores) == 0.0
    assert fnmr_at_fmr(labels, scores, 0.0) == 0.0
    t, acc = best_threshold(labels, scores)
    assert acc == 1.0 and 0.3 < t < 0.7
    # halfway between the lowest genuine and the highest impostor score
    assert t == pytest.approx(0.5)


def test_reversed_scores_are_worst():
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    assert auc(labels, scores) == 0.0
    assert eer(labels, scores) == 1.0
    assert val_at_far(labels, scores, 1e-3) == 0.0


def test_auc_counts_ordered_pairs():
    # genuine 0.4, 0.8 vs impostor 0.6, 0.2: 3 of 4 (genuine, impostor) pairs ordered
    assert auc([1, 1, 0, 0], [0.4, 0.8, 0.6, 0.2]) == 0.75


def test_eer_interpolates():
    # genuine 2, 4 / impostor 1, 3: at threshold 3 FMR 1/2 FNMR 1/2 -> EER 0.5 exactly
    labels = np.array([1, 1, 0, 0])
    scores = np.array([2.0, 4.0, 1.0, 3.0])
    assert eer(labels, scores) == pytest.approx(0.5)
    # 4 genuine above all impostors but one impostor ranked first: FMR 1/4 once FNMR hits 0
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    scores = np.array([5, 4, 3, 2, 6, 1, 0, -1], dtype=float)
    # ROC: (0,0) (1/4,0) (1/4,1) ... ; fpr == fnr on the segment (1/4,0)->(1/4,1) at 1/4
    assert eer(labels, scores) == pytest.approx(0.25)
    assert fnmr_at_fmr(labels, scores, 0.0) == 1.0
    assert fnmr_at_fmr(labels, scores, 0.25) == 0.0


def test_val_at_far_known():
    rng = np.random.default_rng(0)
    impostor = rng.permutation(np.arange(1000)) / 1000  # scores 0..0.999
    genuine = np.array([0.9995, 0.9985, 0.5])
    labels = np.r_[np.ones(3), np.zeros(1000)]
    scores = np.r_[genuine, impostor]
    # FAR <= 1e-3 lets one impostor (0.999) through: genuine 0.9995 and 0.9985 pass, 0.5 not
    assert val_at_far(labels, scores, 1e-3) == pytest.approx(2 / 3)
    # FAR 0 must stay above 0.999: only 0.9995 passes
    assert val_at_far(labels, scores, 0.0) == pytest.approx(1 / 3)
    assert fnmr_at_fmr(labels, scores, 0.0) == pytest.approx(2 / 3)


def test_kfold_accuracy_uses_held_out_threshold():
    # Fold 0's pairs alone would be separable at 0.5, but the other folds put the threshold
    # at 0.25, so fold 0's impostor at 0.3 is misclassified: 3/4 there, 1 elsewhere.
    folds, labels, scores = [], [], []
    for k in range(10):
        folds += [k] * 4
        labels += [1, 1, 0, 0]
        scores += [0.9, 0.8, 0.3, 0.1] if k == 0 else [0.9, 0.35, 0.15, 0.1]
    fa = kfold_accuracy(np.array(labels), np.array(scores), np.array(folds))
    assert fa.accuracies[0] == 0.75
    assert all(a == 1.0 for a in fa.accuracies[1:])
    assert fa.mean == pytest.approx(0.975)
    expected_std = np.std([0.75] + [1.0] * 9, ddof=1)
    assert fa.std == pytest.approx(expected_std)
    assert fa.stderr == pytest.approx(expected_std / np.sqrt(10))


def test_kfold_without_folds_uses_kfold():
    labels = np.tile([1, 0], 50)
    scores = np.where(labels == 1, 1.0, 0.0)
    fa = kfold_accuracy(labels, scores, k=5)
    assert len(fa.accuracies) == 5 and fa.mean == 1.0 and fa.std == 0.0


def test_gaussian_scores_match_theory():
    # Genuine ~ N(1, 1), impostor ~ N(-1, 1): AUC = Phi(2/sqrt 2), EER = Phi(-1), best
    # accuracy = Phi(1).
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    n = 20000
    labels = np.r_[np.ones(n), np.zeros(n)]
    scores = np.r_[rng.normal(1, 1, n), rng.normal(-1, 1, n)]
    folds = np.tile(np.arange(10), 2 * n // 10)
    assert auc(labels, scores) == pytest.approx(norm.cdf(np.sqrt(2)), abs=5e-3)
    assert eer(labels, scores) == pytest.approx(norm.cdf(-1), abs=5e-3)
    assert kfold_accuracy(labels, scores, folds).mean == pytest.approx(norm.cdf(1), abs=5e-3)
    # FMR 1%: threshold z=2.326 above impostor mean -> FNMR = Phi(1.326)
    assert fnmr_at_fmr(labels, scores, 1e-2) == pytest.approx(norm.cdf(2.326 - 2), abs=1e-2)


def test_bootstrap_ci_brackets_estimate_and_narrows():
    rng = np.random.default_rng(2)

    def sample(n):
        labels = np.r_[np.ones(n), np.zeros(n)]
        return labels, np.r_[rng.normal(1, 1, n), rng.normal(-1, 1, n)]

    only_auc = {"auc": lambda y, s, f: auc(y, s)}
    labels, scores = sample(200)
    ci = bootstrap_ci(labels, scores, n=200, metrics=only_auc)
    assert ci["auc"][0] < auc(labels, scores) < ci["auc"][1]
    big = bootstrap_ci(*sample(5000), n=50, metrics=only_auc)
    assert big["auc"][1] - big["auc"][0] < ci["auc"][1] - ci["auc"][0]


def test_verification_metrics_bundle():
    labels = np.tile([1, 0], 100)
    scores = labels + np.random.default_rng(3).normal(0, 0.3, 200)
    folds = np.repeat(np.arange(10), 20)
    m = verification_metrics(labels, scores, folds, n_bootstrap=20)
    assert m.pairs == 200 and m.genuine == m.impostor == 100
    assert len(m.fold_accuracies) == 10
    assert set(m.ci) >= {"accuracy", "auc", "eer", "fmr100", "fmr1000", "zero_fmr"}
    assert m.ci["accuracy"][0] <= m.accuracy <= m.ci["accuracy"][1]


def test_rejects_one_class_and_bad_shapes():
    with pytest.raises(ValueError, match="both"):
        auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="equal"):
        eer([1, 0], [0.1])
    with pytest.raises(ValueError, match="finite"):
        eer([1, 0], [np.nan, 0.1])
