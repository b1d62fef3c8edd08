"""Training throughput of ``maskface train`` (img/s) by frozen stages, and inference speed of
the shipped model against ``dlib-resnet``.

    python benchmarks/bench_train.py --chips runs/chips [--steps 30] [--freeze 0,1,4]

Needs a chip store (made by ``maskface train``); runs a few steps of the real loop per
setting (augmentation included) in a scratch folder and reports images per second.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np
import torch


def train_rate(store, freeze: int, steps: int, batch: int) -> float:
    from maskface.training import TrainConfig, train

    config = TrainConfig(epochs=1, batch_size=batch, steps_per_epoch=steps, freeze=freeze,
                         val_pairs=0)
    with tempfile.TemporaryDirectory() as out:
        result = train(store, out, config, log=lambda m: None)
    return result.history[0]["images_per_second"]


def inference_rate(name: str, chips: np.ndarray, repeats: int = 3) -> float:
    from maskface.recognizers import create_recognizer

    rec = create_recognizer(name)
    rec.embed_chips(chips[:24])  # warm-up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        rec.embed_chips(chips)
        best = max(best, len(chips) / (time.perf_counter() - t))
    return best


def main() -> None:
    from maskface.recognizers import shipped_weights
    from maskface.training import open_store

    ap = argparse.ArgumentParser()
    ap.add_argument("--chips", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--freeze", default="0,1,4")
    args = ap.parse_args()
    store = open_store(args.chips)
    out = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
           "date": time.strftime("%Y-%m-%d")}
    for f in (int(v) for v in args.freeze.split(",")):
        out[f"train_img_s_freeze{f}"] = train_rate(store, f, args.steps, args.batch_size)
        print(f"freeze {f}: {out[f'train_img_s_freeze{f}']:.1f} img/s", flush=True)
    chips = np.asarray(store.chips[:480, 0])
    names = ["dlib-resnet"] + (["dlib-resnet-masked"]
                               if shipped_weights("dlib-resnet-masked").exists() else [])
    for name in names:
        out[f"inference_faces_s_{name}"] = inference_rate(name, chips)
        print(f"{name}: {out[f'inference_faces_s_{name}']:.0f} faces/s", flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
