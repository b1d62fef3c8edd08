"""Face verification benchmarks: metrics, cached embeddings, protocol runs and reports.

    from maskface.evaluation import EmbeddingCache, evaluate_protocols, verification_metrics
    results, emb, timings = evaluate_protocols(["proto/lfw-view2_unmasked-unmasked.csv"],
                                               create_recognizer("dlib-resnet"),
                                               cache=EmbeddingCache("emb.sqlite"))
    results[0].metrics.accuracy

Submodules import torch/matplotlib only when used.
"""

from __future__ import annotations

from maskface.evaluation.embeddings import (
    EmbeddingCache,
    EmbeddingResult,
    embed_paths,
    file_digest,
)
from maskface.evaluation.metrics import (
    FoldAccuracy,
    VerificationMetrics,
    auc,
    bootstrap_ci,
    eer,
    fnmr_at_fmr,
    kfold_accuracy,
    val_at_far,
    verification_metrics,
)
from maskface.evaluation.verification import ConfigurationResult, evaluate_protocols

__all__ = [
    "ConfigurationResult",
    "EmbeddingCache",
    "EmbeddingResult",
    "FoldAccuracy",
    "VerificationMetrics",
    "auc",
    "bootstrap_ci",
    "eer",
    "embed_paths",
    "evaluate_protocols",
    "file_digest",
    "fnmr_at_fmr",
    "kfold_accuracy",
    "val_at_far",
    "verification_metrics",
]
