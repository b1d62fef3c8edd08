"""Memory of a batch run as the input grows: 10k vs 100k synthetic images.

    python benchmarks/bench_memory.py --sizes 10000 100000

Each size runs in its own process (so peak RSS is that run's own) over a tree of tiny PNGs
with a job that only reads them, so the runner's own bookkeeping (walking, queueing, manifest)
is what is measured. Prints the parent's peak RSS per size.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class CountJob:
    """Reads the image and records its size; writes nothing."""

    def __call__(self, image: np.ndarray, *, relpath: str, seed: int):
        from maskface.batch.runner import JobResult

        return JobResult("ok", [], {"shape": list(image.shape)})


def make_tree(root: Path, count: int) -> None:
    data = Image.fromarray(np.full((8, 8, 3), 128, np.uint8))
    for i in range(count):
        folder = root / f"id{i // 100:05d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        data.save(folder / f"{i:07d}.png")


def run_one(root: Path, out: Path, workers: int) -> None:
    from maskface.batch.runner import run_batch

    start = time.perf_counter()
    summary = run_batch(root, out, CountJob(), workers=workers, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{summary.processed} inputs in {time.perf_counter() - start:.1f} s, "
          f"parent peak RSS {peak_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(Path(args.one[0]), Path(args.one[1]), args.workers)
        return
    work = Path(tempfile.mkdtemp(prefix="maskface-memory-"))
    try:
        for size in args.sizes:
            tree = work / f"in{size}"
            make_tree(tree, size)
            print(f"{size:>7} inputs: ", end="", flush=True)
            subprocess.run([sys.executable, __file__, "--workers", str(args.workers),
                            "--one", str(tree), str(work / f"out{size}")], check=True)
            shutil.rmtree(tree)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
