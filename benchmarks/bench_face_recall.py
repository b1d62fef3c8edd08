"""Face-finding recall and precision on photos of any shape with small faces, masked or not.

    python benchmarks/bench_face_recall.py [--data ../shared/data] [--canvases 300]
        [--search auto|all] [--save DIR]

Real LFW faces (one image per person, a seeded sample of the people of View 2 folds 6-10: the
face check of ``maskface.geometry.verify`` was fitted on folds 1-5), half of them masked with
``maskface.mask_image`` (a random style each), are pasted with a soft oval edge into larger
photos of many shapes (1:3 to 3:1, 256 to 1,280 pixels wide), several per photo and never
overlapping. The backgrounds hold no face: regions of scikit-image's sample photos without
people (bricks, grass, gravel, coffee, a rocket, the Hubble deep field, a retina, coins, a
clock, the moon, text...) and blurred noise textures.

Face size is the side of the box of the 468-point face mesh (forehead to chin, about 1.3x
dlib's HOG box), measured on the source image by the default analyser and scaled with the
paste. Two sets are built from one seed:

- ``small``: faces of 20-80 pixels (log-uniform), 2-8 per photo;
- ``group``: landscape group photos (1100x400, 1100x733, 1600x900 and the portrait 733x1100)
  with 3-5 faces of 80-300 pixels.

A detection (its mesh box) matches a pasted face when their boxes overlap by IoU >= 0.4,
greedily, best overlap first. Recall is per face-size bin; precision is matches over all
detections (a second detection of one face counts as false). ``--save DIR`` writes the
first photos with the truth (green) and the detections (red) drawn, for a look (do not
commit them: they show LFW faces).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import maskface
from maskface.geometry.mediapipe_backend import MediaPipeAnalyser

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"
ASPECTS = (1.0, 4 / 3, 3 / 4, 16 / 9, 9 / 16, 2.75, 3.0, 1 / 3, 1.5, 2 / 3)
WIDTHS = (256, 320, 480, 640, 800, 1100, 1280)
GROUP_SHAPES = ((400, 1100), (733, 1100), (900, 1600), (1100, 733))
SMALL_BINS = ((20, 24), (24, 32), (32, 48), (48, 64), (64, 80.01))
GROUP_BINS = ((80, 150), (150, 300.01))
BACKGROUNDS = ("brick", "grass", "gravel", "coffee", "rocket", "hubble_deep_field", "retina",
               "immunohistochemistry", "coins", "clock", "moon", "cell", "page", "text",
               "colorwheel")


@dataclass
class Source:
    """One LFW face ready to paste: the image (masked or not) and its mesh box."""

    image: np.ndarray
    box: np.ndarray
    masked: bool


def sources(lfw: Path, n: int, seed: int) -> list[Source]:
    """``n`` LFW faces of different people, every other one masked."""
    from maskface.datasets.lfw import fold_people

    rng = np.random.default_rng(seed)
    people = [lfw / name for name in sorted(fold_people(lfw.parent, "6-10"))]
    order = rng.permutation(len(people))
    styles = ("surgical", "n95", "kn95", "cloth", "respirator")
    out: list[Source] = []
    for i in order:
        if len(out) == n:
            break
        image = maskface.read_image(sorted(people[i].glob("*.jpg"))[0])
        faces = maskface.detect_faces(image)
        h, w = image.shape[:2]
        central = [f for f in faces if np.hypot(*((f.box[:2] + f.box[2:]) / 2 - (w / 2, h / 2)))
                   < 0.15 * w and f.visibility > 0.9]
        if not central:
            continue
        face = central[0]
        masked = len(out) % 2 == 1
        if masked:
            result = maskface.mask_image(image, str(rng.choice(styles)), faces=[face],
                                         vary=True, seed=int(rng.integers(2**31)))
            if not result.faces:
                continue
            image = result.image
        mesh = face.mesh[:, :2]
        out.append(Source(image, np.array([*mesh.min(0), *mesh.max(0)]), masked))
    return out


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A face-free background of h x w: a sample photo's region or blurred colour noise."""
    from skimage import data

    if rng.random() < 0.7:
        name = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        image = np.asarray(getattr(data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.dstack([image] * 3)
        image = np.ascontiguousarray(image[..., :3])
        # Stretch the sample so a random region of it covers the canvas.
        k = max(h / image.shape[0], w / image.shape[1]) * rng.uniform(1.0, 2.0)
        image = cv2.resize(image, (max(w, round(image.shape[1] * k)),
                                   max(h, round(image.shape[0] * k))))
        y = rng.integers(0, image.shape[0] - h + 1)
        x = rng.integers(0, image.shape[1] - w + 1)
        return image[y : y + h, x : x + w].copy()
    noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), rng.uniform(1, 25))
    noise = (noise - noise.mean()) / (noise.std() + 1e-6)
    base = rng.uniform(40, 215, 3).astype(np.float32)
    return np.clip(base + noise * rng.uniform(10, 60), 0, 255).astype(np.uint8)


def paste(canvas: np.ndarray, source: Source, size: float, centre: np.ndarray) -> np.ndarray:
    """Paste the source's head so its face is ``size`` pixels at ``centre``; its box there."""
    box = source.box
    k = size / max(box[2] - box[0], box[3] - box[1])
    c = (box[:2] + box[2:]) / 2
    m = np.array([[k, 0, centre[0] - k * c[0]], [0, k, centre[1] - k * c[1]]])
    h, w = canvas.shape[:2]
    flags = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(source.image, m, (w, h), flags=flags,
                            borderMode=cv2.BORDER_REFLECT)
    # A soft oval around the head: hair, ears and some neck come along.
    alpha = np.zeros(source.image.shape[:2], np.float32)
    axes = (int((box[2] - box[0]) * 0.85), int((box[3] - box[1]) * 0.8))
    cv2.ellipse(alpha, (int(c[0]), int(c[1] + 0.1 * (box[3] - box[1]))), axes, 0, 0, 360,
                1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.08 * (box[2] - box[0]))
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = np.clip(canvas * (1 - a) + warped * a + 0.5, 0, 255).astype(np.uint8)
    return (box.reshape(2, 2) - c) * k + centre


def compose(pool: list[Source], rng: np.random.Generator, shape: tuple[int, int],
            sizes: tuple[float, float], count: tuple[int, int]
            ) -> tuple[np.ndarray, list[tuple[np.ndarray, bool]]]:
    """A photo of ``shape`` with faces of ``sizes`` pixels, and the truth (box, masked)."""
    h, w = shape
    canvas = _texture(h, w, rng)
    truth: list[tuple[np.ndarray, bool]] = []
    taken: list[np.ndarray] = []
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        size = float(np.exp(rng.uniform(np.log(sizes[0]), np.log(sizes[1]))))
        half = 0.9 * size  # the pasted head's footprint
        if 2 * half >= min(h, w):
            continue
        for _attempt in range(50):
            centre = np.array([rng.uniform(half, w - half), rng.uniform(half, h - half)])
            foot = np.array([*(centre - half), *(centre + half)])
            if all(_overlap(foot, t) == 0 for t in taken):
                break
        else:
            continue
        source = pool[int(rng.integers(len(pool)))]
        box = paste(canvas, source, size, centre)
        truth.append((box.ravel(), source.masked))
        taken.append(foot)
    return canvas, truth


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _overlap(a, b)
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[np.ndarray], found: list[np.ndarray], threshold: float = 0.4
          ) -> tuple[list[bool], int]:
    """Which true faces were found, and how many detections matched none."""
    pairs = sorted(((_iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)),
                   reverse=True)
    hit, used = [False] * len(truth), [False] * len(found)
    for score, i, j in pairs:
        if score < threshold:
            break
        if not hit[i] and not used[j]:
            hit[i] = used[j] = True
    return hit, used.count(False)


def run(kind: str, pool: list[Source], n: int, seed: int, analyser: MediaPipeAnalyser,
        save: Path | None) -> dict:
    rng = np.random.default_rng(seed)
    rows: list[tuple[float, bool, bool]] = []  # size, masked, found
    false = detections = 0
    seconds = pixels = 0.0
    for k in tqdm(range(n), desc=kind, unit="photo"):
        if kind == "small":
            w = int(WIDTHS[rng.integers(len(WIDTHS))])
            aspect = ASPECTS[rng.integers(len(ASPECTS))]
            h = int(np.clip(round(w / aspect), 160, 1400))
            image, truth = compose(pool, rng, (h, w), (20, 80), (2, 8))
        else:
            h, w = GROUP_SHAPES[rng.integers(len(GROUP_SHAPES))]
            top = min(300, 0.8 * min(h, w) / 1.8)
            image, truth = compose(pool, rng, (h, w), (80, top), (3, 5))
        start = time.perf_counter()
        faces = analyser(image)
        seconds += time.perf_counter() - start
        pixels += h * w
        boxes = [f.box for f in faces]
        hit, unmatched = match([t for t, _ in truth], boxes)
        false += unmatched
        detections += len(boxes)
        for (box, masked), ok in zip(truth, hit, strict=True):
            rows.append((float(max(box[2] - box[0], box[3] - box[1])), masked, ok))
        if save is not None and k < 40:
            _draw(image, truth, faces, save / f"{kind}_{k:03d}.jpg")
    return {"rows": rows, "false": false, "detections": detections, "photos": n,
            "seconds": seconds, "megapixels": pixels / 1e6}


def _draw(image, truth, faces, path: Path) -> None:
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for box, _ in truth:
        cv2.rectangle(out, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:]),
                      (0, 200, 0), 1)
    for f in faces:
        cv2.rectangle(out, tuple(int(v) for v in f.box[:2]), tuple(int(v) for v in f.box[2:]),
                      (0, 0, 255), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), out)


def report(kind: str, result: dict, bins) -> None:
    rows = result["rows"]
    print(f"\n{kind}: {result['photos']} photos, {len(rows)} faces")
    print("| face size (px) | unmasked | masked | all |")
    print("|---|---|---|---|")
    for lo, hi in bins:
        cells = []
        for want in (False, True, None):
            sel = [ok for s, m, ok in rows if lo <= s < hi and (want is None or m == want)]
            cells.append(f"{np.mean(sel):.1%} ({sum(sel)}/{len(sel)})" if sel else "-")
        print(f"| {lo:g}-{hi:.0f} | " + " | ".join(cells) + " |")
    floor = 24 if kind == "small" else bins[0][0]
    big = [ok for s, _, ok in rows if s >= floor]
    tp = sum(ok for _, _, ok in rows)
    precision = tp / max(tp + result["false"], 1)
    print(f"recall, faces >= {floor} px: {np.mean(big):.2%} ({sum(big)}/{len(big)}); "
          f"all faces: {np.mean([ok for _, _, ok in rows]):.2%}")
    print(f"precision: {precision:.2%} ({result['false']} false detections of "
          f"{result['detections']}, {result['false'] / result['photos']:.3f} a photo)")
    print(f"time: {1000 * result['seconds'] / result['photos']:.0f} ms a photo, "
          f"{1000 * result['seconds'] / result['megapixels']:.0f} ms a megapixel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--canvases", type=int, default=300, help="photos in the small set")
    parser.add_argument("--faces", type=int, default=400, help="distinct LFW faces to paste")
    parser.add_argument("--search", choices=("auto", "all"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args()
    lfw = args.data / "lfw" / "lfw-deepfunneled"
    if not lfw.is_dir():
        raise SystemExit(f"LFW not found at {lfw}")
    pool = sources(lfw, args.faces, args.seed)
    analyser = MediaPipeAnalyser(search=args.search)
    print(f"search={args.search}, min_face={analyser.min_face:g}, {len(pool)} LFW faces")
    small = run("small", pool, args.canvases, args.seed + 1, analyser, args.save)
    report("small", small, SMALL_BINS)
    group = run("group", pool, max(1, args.canvases // 3), args.seed + 2, analyser, args.save)
    report("group", group, GROUP_BINS)


if __name__ == "__main__":
    main()
