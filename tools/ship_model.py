"""Put a trained model into the package as ``dlib-resnet-masked`` (fp16 safetensors).

    python tools/ship_model.py RUN/model.safetensors [--name dlib-resnet-masked]

RUN is a ``maskface train --out`` folder; its ``history.json`` (recipe, data, best epoch) is
recorded in the file's metadata so the shipped weights say where they came from. See the
README's model card for the command that made RUN.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from maskface.recognizers import shipped_weights
    from maskface.recognizers.dlib_resnet import load_weights
    from maskface.training.trainer import save_weights

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--name", default="dlib-resnet-masked")
    args = ap.parse_args()
    history = args.weights.with_name("history.json")
    from maskface.recognizers.model_common import file_alignment

    meta = {"name": args.name, "maskface.alignment": file_alignment(args.weights) or "dlib150"}
    if history.is_file():
        h = json.loads(history.read_text())
        meta["best_epoch"] = str(h.get("best_epoch"))
        meta["config"] = json.dumps(h.get("config"), sort_keys=True)
        if h.get("whitening"):
            meta["whitening"] = json.dumps(h["whitening"], sort_keys=True)
    out = save_weights(load_weights(args.weights), shipped_weights(args.name), half=True,
                       metadata=meta)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
