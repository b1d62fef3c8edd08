"""Frames per second of `maskface watch` on a 640x480 door video composed from LFW photos.

    python benchmarks/bench_watch.py --seconds 20 --fps 25 --detect-every 1,3 --threads 1,2

A gallery of four enrolled people (one photo each, mask-aware) and a scripted video in which
they (masked or not) and strangers walk past, one or two at a time. First the median cost of
each stage per frame (decode, detect, search, draw and encode); then each setting runs the
whole video after a warm-up (models loaded), once without output and once writing the
annotated video, and its event list is checked against the script. Prints the load average,
since the machine's two cores may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from maskface import mask_image, read_image
from maskface.gallery import Gallery
from maskface.video import Appearance, compose_video, watch

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw" / "lfw-deepfunneled"
ENROLLED = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld")
STRANGERS = ("Serena_Williams", "Junichiro_Koizumi", "Hugo_Chavez", "Jacques_Chirac")
STYLES = (None, "surgical", "kn95", "cloth")


def photo(root: Path, name: str, index: int, style: str | None) -> np.ndarray:
    image = read_image(root / name / f"{name}_{index:04d}.jpg")
    if style is not None:
        image = mask_image(image, style, seed=index).image
    return image[20:230, 30:220]


def script(root: Path, seconds: float, rng: np.random.Generator) -> list[tuple[str, Appearance]]:
    """People walking past: each 2.5-4 s on screen, a new one every ~2 s, left or right lane."""
    out, t, i = [], 0.0, 0
    while t < seconds - 2.0:
        who = ENROLLED[i % len(ENROLLED)] if i % 3 != 2 else STRANGERS[i % len(STRANGERS)]
        style = STYLES[i % len(STYLES)]
        stay = float(rng.uniform(2.5, 4.0))
        lane = (170.0, 24.0) if i % 2 == 0 else (470.0, -24.0)
        image = photo(root, who, 7 + i // len(ENROLLED) % 3, style)
        out.append((who if who in ENROLLED else "unknown",
                    Appearance(image, t, min(seconds, t + stay), (lane[0], 240.0),
                               (lane[1], 0.0))))
        t += float(rng.uniform(1.6, 2.6))
        i += 1
    return out


def stage_costs(video: Path, gallery: Gallery, frames: int = 60) -> None:
    """Milliseconds per frame of each stage, on frames with faces (medians)."""
    from maskface.geometry.locate import locate_faces
    from maskface.video import VideoSink, VideoSource, annotate

    times: dict[str, list[float]] = {"decode": [], "detect": [], "search": [], "draw+encode": []}
    faces_seen = []
    sink = VideoSink(video.with_name("stages.mp4"), 25, (640, 480))
    with VideoSource(video) as source:
        it = iter(source)
        while len(times["search"]) < frames:
            t0 = time.perf_counter()
            item = next(it, None)
            if item is None:
                break
            frame = item[2]
            t1 = time.perf_counter()
            faces = locate_faces(frame, detector=gallery.detector, upsample=0, min_size=40)
            t2 = time.perf_counter()
            if not faces:
                continue
            results = gallery.search_faces(frame, faces, k=5)
            t3 = time.perf_counter()
            annotate(frame, [(r.box, r.identity, (0, 200, 0)) for r in results], "x")
            sink.write(frame)
            t4 = time.perf_counter()
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[key].append(1000 * dt)
            faces_seen.append(len(faces))
    sink.abort()
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"stages on {len(faces_seen)} frames with {np.mean(faces_seen):.2f} faces on average, "
          f"median ms/frame: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
          + f"; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=LFW)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--detect-every", default="1,2,3")
    parser.add_argument("--threshold", type=float, default=0.94)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default="1", help="PyTorch threads to compare, e.g. 1,2")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maskface-watch-"))
    try:
        start = time.perf_counter()
        gallery = Gallery.create(work / "gallery")
        for name in ENROLLED:
            gallery.enrol(name, [photo(args.root, name, 1, None)], mask_aware=True)
        gallery.threshold = args.threshold
        print(f"gallery: {len(ENROLLED)} people, {len(gallery)} templates "
              f"in {time.perf_counter() - start:.1f} s")
        people = script(args.root, args.seconds, np.random.default_rng(args.seed))
        video = work / "door.mp4"
        frames = compose_video(video, [a for _, a in people], duration=args.seconds,
                               fps=args.fps, seed=args.seed)
        visible = np.zeros(frames, int)
        for _, a in people:
            visible[list(a.frames(args.fps))] += 1
        print(f"video: {frames} frames 640x480 at {args.fps:g} fps, {len(people)} visits; "
              f"frames with 0/1/2 faces: {[(visible == n).sum() for n in range(3)]}")
        watch(video, gallery, max_frames=20)  # warm-up: models loaded, caches filled
        import torch

        for threads in (int(v) for v in args.threads.split(",")):
            torch.set_num_threads(threads)
            print(f"PyTorch threads {threads}: ", end="")
            stage_costs(video, gallery)
        expected = [who for who, _ in people]
        runs = [(every, out, threads) for threads in (int(v) for v in args.threads.split(","))
                for every in (int(v) for v in args.detect_every.split(","))
                for out in (None, work / "annotated.mp4")]
        for every, out, threads in runs:
            load = os.getloadavg()[0]
            report = watch(video, gallery, detect_every=every, out=out, threads=threads)
            got = [e.identity for e in sorted(report.events, key=lambda e: e.first_seen)]
            pairs = list(zip(expected, got, strict=False))
            right = sum(a == b for a, b in pairs)
            wrong = sum(a != b and b != "unknown" for a, b in pairs)  # someone else let in
            print(f"threads {threads}, detect every {every}, "
                  f"{'annotated video' if out else 'events only':15s}: "
                  f"{report.fps:5.1f} frames/s ({report.elapsed:.1f} s), "
                  f"{len(report.events)} events for {len(expected)} visits: {right} as "
                  f"scripted, {wrong} named as someone else, "
                  f"{len(pairs) - right - wrong} enrolled but unknown; load average "
                  f"{load:.1f} -> {os.getloadavg()[0]:.1f}")
            if right < len(expected):
                print(f"    scripted {expected}\n    named    {got}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
