"""Throughput and coverage of `maskface apply` on LFW (decode, detection, render, encode).

    python benchmarks/bench_apply_lfw.py                 # all 13,233 images, 2 workers
    python benchmarks/bench_apply_lfw.py --limit 2000 --renderer 2d --styles surgical,kn95

Prints images/s and the share of images masked, and lists the images where no face was found.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from maskface.batch.runner import run_batch
from maskface.mask_job import MaskJob

LFW = Path(__file__).resolve().parents[1].parent / "shared/data/lfw/lfw-deepfunneled"


def subset(root: Path, limit: int | None, dest: Path) -> Path:
    """A tree of symlinks to the first ``limit`` identities' images (all when None)."""
    if limit is None:
        return root
    count = 0
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        (dest / person.name).mkdir(parents=True, exist_ok=True)
        for image in sorted(person.iterdir()):
            os.symlink(image, dest / person.name / image.name)
            count += 1
        if count >= limit:
            break
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=LFW)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--renderer", default="2d")
    parser.add_argument("--styles", default="surgical,n95,kn95,cloth,respirator")
    parser.add_argument("--vary", action="store_true", help="random colours/patterns per face")
    parser.add_argument("--keep", type=Path, default=None, help="keep outputs here")
    args = parser.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"LFW not found at {args.root}")

    work = Path(tempfile.mkdtemp(prefix="maskface-bench-"))
    try:
        source = subset(args.root, args.limit, work / "in")
        out = args.keep or work / "out"
        job = MaskJob(styles=tuple(args.styles.split(",")), renderer=args.renderer, vary=args.vary)
        start = time.perf_counter()
        summary = run_batch(source, out, job, workers=args.workers, resume=False, progress=False)
        elapsed = time.perf_counter() - start
        with open(summary.manifest, newline="") as fh:
            rows = list(csv.DictReader(fh))
        total = len(rows)
        ok = sum(r["status"] == "ok" for r in rows)
        print(summary)
        print(f"machine: {platform.node()} {os.cpu_count()} cores, {platform.processor()}")
        print(f"renderer {args.renderer}, {args.workers} workers: {total} images in "
              f"{elapsed:.1f} s = {total / elapsed:.1f} images/s; masked {ok}/{total} = "
              f"{100 * ok / total:.2f}%")
        busy = sum(float(r["seconds"]) for r in rows)
        print(f"worker time per image (read, detect, render, write): {1000 * busy / total:.1f} ms")
        for r in rows:
            if r["status"] != "ok":
                print(f"  {r['status']:10s} {r['input']} {r['reason']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
