from .embeddings import EmbeddingCache, EmbeddingResult, embed_paths, file_digest
from .metrics import (
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
from .verification import ConfigurationResult, evaluate_protocols
