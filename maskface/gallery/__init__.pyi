from .benchmark import OpenSetRun, evaluate_open_set, lfw_open_set, load_run
from .gallery import (
    DEFAULT_MASK_STYLES,
    DEFAULT_THRESHOLDS,
    UNKNOWN,
    Calibration,
    EnrolledImage,
    EnrolReport,
    FaceMatch,
    Gallery,
    GalleryError,
    SearchResult,
    SkippedImage,
    masked_variants,
    recognizer_signature,
    threshold_at_fpir,
)
from .index import INDEX_KINDS
from .mask_classifier import MaskClassifier, mask_probability
from .openset import OpenSetScores, open_set_metrics
from .report import write_report
