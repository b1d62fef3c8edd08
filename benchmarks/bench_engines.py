"""Masking the same LFW images with the local process pool and with a local Dask cluster.

    python benchmarks/bench_engines.py --limit 3000 --workers 2

Both runs use the same job, seed and images; the outputs are compared byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import tempfile
import time
from pathlib import Path

from bench_apply_lfw import LFW, subset

from maskface.batch.runner import run_batch
from maskface.mask_job import MaskJob


def _same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files = [f for f in files if f.name != "manifest.csv"]
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=LFW)
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maskface-engines-"))
    try:
        source = subset(args.root, args.limit, work / "in")
        job = MaskJob(styles=("surgical", "n95", "kn95", "cloth", "respirator"))
        outs = {}
        for engine in ("pool", "dask"):
            out = work / engine
            start = time.perf_counter()
            summary = run_batch(source, out, job, workers=args.workers, progress=False,
                                scheduler="local" if engine == "dask" else None)
            elapsed = time.perf_counter() - start
            outs[engine] = out
            print(f"{engine:5s}: {summary.processed} images in {elapsed:.1f} s = "
                  f"{summary.processed / elapsed:.1f} images/s (start-up included)")
        print("identical outputs:", _same_tree(outs["pool"], outs["dask"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
