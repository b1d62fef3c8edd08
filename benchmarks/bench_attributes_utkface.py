"""Issue 6 benchmark: sex, race and age from masked vs unmasked UTKFace faces.

    maskface datasets mask utkface ../shared/data/utkface /tmp/utk-masked \
        --styles surgical,n95,kn95,cloth --vary
    python benchmarks/bench_attributes_utkface.py --masked /tmp/utk-masked --work /tmp/attr

Embeds a seeded random order of the sample in chunks (into the SQLite embedding cache
``--work/embeddings.sqlite``, so an interrupted run resumes and ``--limit`` uses a random
subset), then runs the four-combination study on the
random and uniform splits and writes JSON + HTML reports under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from maskface.attributes.features import embed_images
from maskface.attributes.report import write_report
from maskface.attributes.study import load_masked_pairs, run_study
from maskface.evaluation.embeddings import EmbeddingCache

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/utkface")
    parser.add_argument("--masked", type=Path, default=Path("/tmp/utk-masked"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/attr"))
    parser.add_argument("--limit", type=int, default=None, help="Images (a seeded random subset).")
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embed-only", action="store_true")
    args = parser.parse_args()

    pairs = load_masked_pairs(args.data, args.masked)
    order = np.random.default_rng(args.seed).permutation(len(pairs.attributes))
    if args.limit:
        order = order[: args.limit]
    unmasked, masked, seconds = [], [], 0.0
    cache = EmbeddingCache(args.work / "embeddings.sqlite")
    for start in range(0, len(order), args.chunk):
        idx = order[start : start + args.chunk]
        originals = [pairs.unmasked[i] for i in idx]
        clean = embed_images(originals, cache=cache, progress=True)
        # The masked copy is cut where its original's face is (same chip geometry).
        mask = embed_images([pairs.masked[i] for i in idx], align_with=originals, cache=cache,
                            progress=True)
        unmasked.append(clean)
        masked.append(mask)
        seconds += clean.seconds + mask.seconds
        print(f"embedded {start + len(idx)}/{len(order)} ({seconds:.0f} s so far)", flush=True)
    if args.embed_only:
        return
    attributes = [pairs.attributes[i] for i in order]
    styles = [pairs.styles[i] for i in order]
    features = {
        "unmasked": np.concatenate([f.embeddings for f in unmasked]),
        "masked": np.concatenate([f.embeddings for f in masked]),
    }
    fallback = int(np.concatenate([f.fallback for f in unmasked]).sum())
    for kind in ("random", "uniform"):
        t0 = time.perf_counter()
        result = run_study(features, attributes, split_kind=kind, seed=args.seed,
                           styles=styles, split_dir=args.work / "splits")
        result["meta"].update({
            "dataset": str(args.data), "masked_copy": str(args.masked),
            "images": len(order), "excluded": pairs.excluded,
            "detector_fallback": fallback, "embedding_seconds": round(seconds, 1),
            "study_seconds": round(time.perf_counter() - t0, 1),
        })
        out = args.work / f"report-{kind}"
        write_report(result, out)
        print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
