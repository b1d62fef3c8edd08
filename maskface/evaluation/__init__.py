"""Face verification benchmarks: metrics, cached embeddings, protocol runs and reports.

    from maskface.evaluation import EmbeddingCache, evaluate_protocols, verification_metrics
    results, emb, timings = evaluate_protocols(["proto/lfw-view2_unmasked-unmasked.csv"],
                                               create_recognizer("dlib-resnet"),
                                               cache=EmbeddingCache("emb.sqlite"))
    results[0].metrics.accuracy

The names (listed in ``__init__.pyi``) are imported on first use: detection workers, which
need only the embedding module, do not load scikit-learn; torch and matplotlib load only
when used.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
