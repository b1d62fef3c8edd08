"""Time ``maskface eval`` on LFW View 2: a first run on the given cache, then a warm re-run.

    maskface datasets mask lfw ../shared/data/lfw /tmp/lfw-masked \
        --styles surgical,n95,kn95,cloth --vary --save-json
    maskface datasets protocols lfw ../shared/data/lfw /tmp/proto4 --masked-root /tmp/lfw-masked
    python benchmarks/bench_eval_lfw.py --protocol /tmp/proto4 --cache /tmp/bench.sqlite \
        --out /tmp/eval-lfw

A cache file that does not exist yet makes the first run cold. Prints the metrics table,
the enrolment counts, wall times and embedding throughput (faces embedded per second of the
embedding stage, detection and alignment included); writes the report of the first run into
OUT and the timings into OUT/bench.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from maskface.cli_eval import protocol_files
from maskface.evaluation.embeddings import DETECTORS, EmbeddingCache
from maskface.evaluation.report import build_report, markdown_table, write_report
from maskface.evaluation.verification import evaluate_protocols
from maskface.recognizers import DEFAULT_DLIB_RECOGNIZER, create_recognizer


def run(files: list[Path], args: argparse.Namespace) -> tuple[dict, float, list, object]:
    recognizer = create_recognizer(args.recognizer)
    cache = EmbeddingCache(args.cache)
    before = len(cache)
    t0 = time.perf_counter()
    results, emb, timings = evaluate_protocols(
        files, recognizer, cache=cache, fallback=args.fallback, n_bootstrap=args.bootstrap,
        detector=args.detector, progress=True,
    )
    wall = time.perf_counter() - t0
    timings["new_embeddings"] = len(cache) - before
    cache.close()
    report = build_report(results, emb, recognizer=recognizer.name, detector=args.detector,
                          fallback=args.fallback, protocol_files=[str(f) for f in files],
                          timings=timings, command="python benchmarks/bench_eval_lfw.py")
    return report, wall, results, emb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", required=True, help="folder of protocol CSVs")
    parser.add_argument("--configs", default="all")
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", default="eval-lfw")
    parser.add_argument("--recognizer", default=DEFAULT_DLIB_RECOGNIZER)
    parser.add_argument("--detector", default="blazeface", choices=list(DETECTORS))
    parser.add_argument("--fallback", default="center", choices=["center", "exclude"])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--no-warm", action="store_true", help="skip the warm re-run")
    args = parser.parse_args()
    files = protocol_files((args.protocol,), args.configs)
    cold_existing = Path(args.cache).is_file()
    report, wall, results, emb = run(files, args)
    write_report(args.out, report, results)
    t = report["timings"]
    bench = {
        "first_run": {"wall_s": wall, "cache_existed": cold_existing, **t,
                      "faces_per_s": t["new_embeddings"] / t["embedding_s"]},
        "fallback_used": len(emb.fallback_used), "failures": len(emb.failures),
    }
    if not args.no_warm:
        warm, wall_warm, _, _ = run(files, args)
        bench["warm_run"] = {"wall_s": wall_warm, **warm["timings"]}
    print(markdown_table(report))
    print(json.dumps(bench, indent=2))
    Path(args.out, "bench.json").write_text(json.dumps(bench, indent=2))


if __name__ == "__main__":
    main()
