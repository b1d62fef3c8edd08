"""Gallery speed: search latency at 10k and 1M templates, exact and approximate; enrolment.

    python benchmarks/bench_gallery.py [--sizes 10000,1000000] [--queries 1000]
        [--photos 200] [--cache /tmp/gal/cache.sqlite] [--json out.json]

Search. Templates are synthetic but shaped like real ones: the mean and covariance of
dlib-resnet embeddings of LFW (embedded here through the cache, or a fixed isotropic cone when
no LFW is found) give identity centres, and each identity's templates and probes scatter
around its centre as the same person's photos do. (Uniform random unit vectors would be far
easier for an approximate index than faces, whose embeddings crowd into a narrow cone.) Each
gallery is a real :class:`maskface.gallery.Gallery` on disk, loaded in bulk; latency is one
probe per call of ``search_embeddings(probe, k=5)`` (index search plus aggregation by
identity), p50 and p99 over ``--queries`` mated probes. recall@1 is the share of probes whose
top identity under the approximate index equals the exact one.

Enrolment. ``Gallery.enrol_tree`` on ``--photos`` LFW photos (detection, 68 landmarks,
alignment, embedding, mask flag, SQLite, index), plain and mask-aware (four masked variants
per photo, each rendered and detected again); faces per second of input photos.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"
PER_IDENTITY = 10


def face_like_distribution(cache: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(mean, covariance square root) of dlib-resnet embeddings of LFW, and where from."""
    root = LFW / "lfw-deepfunneled"
    if root.is_dir():
        from maskface.evaluation import EmbeddingCache, embed_paths
        from maskface.imageio import iter_images
        from maskface.recognizers import create_recognizer

        paths = list(iter_images(root))[::4]
        emb = embed_paths(paths, create_recognizer("dlib-resnet"),
                          cache=EmbeddingCache(cache) if cache else None, progress=True)
        x = emb.embeddings[emb.ok].astype(np.float64)
        mean = x.mean(0)
        cov = np.cov(x, rowvar=False)
        w, v = np.linalg.eigh(cov)
        return mean, v * np.sqrt(np.maximum(w, 0)), f"LFW ({len(x)} faces)"
    rng = np.random.default_rng(0)
    mean = rng.normal(size=128)
    mean /= np.linalg.norm(mean)
    return mean, np.eye(128) * 0.05, "isotropic cone (no LFW found)"


def synthetic(n_templates: int, mean: np.ndarray, root: np.ndarray, queries: int,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(templates, their identity, probes, their identity): identities of PER_IDENTITY
    templates; identity spread 0.8 of the face covariance, within-identity 0.6 of it."""
    rng = np.random.default_rng(seed)
    n_id = n_templates // PER_IDENTITY
    dim = len(mean)
    centres = mean + 0.8 * rng.standard_normal((n_id, dim)).astype(np.float32) @ root.T
    labels = np.repeat(np.arange(n_id), PER_IDENTITY)
    x = np.empty((n_id * PER_IDENTITY, dim), np.float32)
    for start in range(0, len(x), 200_000):  # in chunks: 1M x 128 float64 would be 1 GB
        part = slice(start, min(start + 200_000, len(x)))
        noise = rng.standard_normal((part.stop - part.start, dim)).astype(np.float32)
        x[part] = centres[labels[part]] + 0.6 * noise @ root.T.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q_id = rng.choice(n_id, queries, replace=False)
    q = centres[q_id] + 0.6 * rng.standard_normal((queries, dim)).astype(np.float32) @ root.T
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    return x, labels, q, q_id


def bench_search(size: int, mean, root, queries: int, kinds: list[str], work: Path) -> list:
    """One gallery of ``size`` templates, loaded once, then indexed as each kind in turn
    (``maskface gallery index``), reopened from disk and searched."""
    from maskface.gallery import Gallery

    x, labels, q, q_id = synthetic(size, mean, root, queries)
    names = [f"id{i:07d}" for i in range(labels.max() + 1)]
    truth = np.array([names[i] for i in q_id])
    path = work / f"g{size}"
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    with Gallery.create(path, index="flat") as g, g.batch():
        for start in range(0, len(x), 100_000):
            part = slice(start, start + 100_000)
            g.add_embeddings([names[i] for i in labels[part]], x[part])
    t_load = time.perf_counter() - t
    print(f"{size}: loaded in {t_load:.1f} s", flush=True)
    rows, exact_top = [], None
    for kind in kinds:
        t = time.perf_counter()
        with Gallery.open(path) as g:
            if g.index_kind != kind:
                g.rebuild_index(kind)
        t_index = time.perf_counter() - t
        t = time.perf_counter()
        g = Gallery.open(path, readonly=True)
        t_open = time.perf_counter() - t
        g.search_embeddings(q[:20], 5)  # warm up
        lat, top = [], []
        for i in range(len(q)):
            t = time.perf_counter()
            m = g.search_embeddings(q[i], 5)
            lat.append(time.perf_counter() - t)
            top.append(m[0][0].identity)
        t = time.perf_counter()
        g.search_embeddings(q, 5)
        t_batch = time.perf_counter() - t
        options = g.info()["index_options"]
        g.close()
        top = np.array(top)
        if kind == "flat":
            exact_top = top
        rows.append({
            "templates": len(x), "identities": len(names), "index": kind,
            "options": options,
            "p50_ms": 1000 * float(np.percentile(lat, 50)),
            "p99_ms": 1000 * float(np.percentile(lat, 99)),
            "batch_per_probe_ms": 1000 * t_batch / len(q),
            "recall_at_1_vs_exact": (float(np.mean(top == exact_top))
                                     if exact_top is not None else None),
            "identified_at_rank1": float(np.mean(top == truth)),
            "load_s": t_load, "index_build_s": t_index, "open_s": t_open,
            "folder_mb": sum(f.stat().st_size for f in path.iterdir()) / 1e6,
        })
        print(json.dumps(rows[-1]), flush=True)
    shutil.rmtree(path, ignore_errors=True)
    return rows


def bench_enrol(photos: int, work: Path) -> list:
    from maskface.gallery import Gallery

    root = LFW / "lfw-deepfunneled"
    if not root.is_dir():
        return []
    tree = work / "people"
    shutil.rmtree(tree, ignore_errors=True)
    chosen = 0
    from maskface.imageio import is_image_path

    for person in sorted(os.listdir(root)):
        if not (root / person).is_dir():  # LFW's archive carries a stray .DS_Store
            continue
        files = [f for f in sorted(os.listdir(root / person)) if is_image_path(f)][:4]
        (tree / person).mkdir(parents=True)
        for f in files:
            os.symlink(root / person / f, tree / person / f)
        chosen += len(files)
        if chosen >= photos:
            break
    rows = []
    for mask_aware in (False, True):
        path = work / f"enrol-{int(mask_aware)}"
        shutil.rmtree(path, ignore_errors=True)
        with Gallery.create(path) as g:
            g.search_embeddings(np.ones(128, np.float32), 1)
            g.recognizer  # noqa: B018  (model loading is not enrolment)
            t = time.perf_counter()
            report = g.enrol_tree(tree, mask_aware=mask_aware, progress=True)
            dt = time.perf_counter() - t
            rows.append({"mask_aware": mask_aware, "photos": chosen,
                         "enrolled": len(report.added), "templates": report.templates,
                         "seconds": dt, "photos_per_s": chosen / dt,
                         "templates_per_s": report.templates / dt})
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(path, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,1000000", help="'' for no search benchmark")
    ap.add_argument("--kinds", default="flat,hnsw,ivf")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--cache", default=None, help="Embedding cache for the LFW distribution.")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-enrol", action="store_true")
    args = ap.parse_args()
    import faiss

    mean, root, source = face_like_distribution(args.cache)
    out = {"faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(),
           "distribution": source, "search": [], "enrol": []}
    with tempfile.TemporaryDirectory(prefix="bench-gallery-") as tmp:
        for size in (int(s) for s in args.sizes.split(",") if s):
            out["search"] += bench_search(size, mean, root, args.queries,
                                          args.kinds.split(","), Path(tmp))
        if not args.skip_enrol:
            out["enrol"] = bench_enrol(args.photos, Path(tmp))
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
