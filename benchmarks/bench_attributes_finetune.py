"""Issue 6 benchmark: fine-tuned dlib ResNet for sex, race and age on (masked) UTKFace.

    nice -n 10 python benchmarks/bench_attributes_finetune.py --masked /tmp/utk-masked \
        --work /tmp/attr-ft --runs sex:masked/masked,race:masked/masked --epochs 2 --freeze 4

Makes the masked copy first when ``--masked`` holds none (``maskface datasets mask utkface
DATA MASKED --styles surgical,n95,kn95,cloth --vary``, as the embedding baseline did), cuts
and caches the chips once (``--work/cache``), then fine-tunes one network per run
(``target:train/test``) on the baseline's uniform split and writes each run's JSON + HTML
report under ``--work/<target>-<train>-<test>/`` and every headline figure to
``--work/summary.json`` (figures: ``RESULTS.md``). ``--threads 1`` is
much faster than torch's default when other jobs share the cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from maskface.attributes.finetune import FineTuneConfig, default_device, save_finetuned
from maskface.attributes.pipeline import pair_chips, run_finetune
from maskface.attributes.report import write_report
from maskface.attributes.study import CONDITIONS, load_masked_pairs

ROOT = Path(__file__).resolve().parents[1]
STYLES = "surgical,n95,kn95,cloth"


def ensure_masked_copy(data: Path, masked: Path) -> None:
    """Run (or resume) the masking command unless ``masked`` covers every image of ``data``."""
    try:
        if not load_masked_pairs(data, masked).excluded.get("not_in_manifest"):
            return
    except FileNotFoundError:
        pass
    cmd = ["maskface", "datasets", "mask", "utkface", str(data), str(masked),
           "--styles", STYLES, "--vary"]
    print("making the masked copy:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"masked copy in {time.perf_counter() - start:.0f} s", flush=True)


def parse_runs(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """``sex:masked/masked,race:masked/both`` -> [(target, train_on, test_on), ...]."""
    runs = []
    for item in text.split(","):
        target, _, conds = item.partition(":")
        train_on, _, test_on = (conds or "masked/masked").partition("/")
        tests = CONDITIONS if test_on == "both" else (test_on or train_on,)
        runs.append((target, train_on, tests))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/utkface")
    parser.add_argument("--masked", type=Path, default=Path("/tmp/utk-masked"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/attr-ft"))
    parser.add_argument("--runs", default="sex:masked/masked,race:masked/masked",
                        help="Comma-separated target:train/test (test may be 'both').")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--trunk-lr", type=float, default=1e-4)
    parser.add_argument("--freeze", type=int, default=0)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--split", default="uniform", choices=["uniform", "random"])
    parser.add_argument("--limit", type=int, default=None, help="Images (seeded subset).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--tag", default="", help="Suffix of the run names (e.g. freeze0).")
    parser.add_argument("--chips-only", action="store_true", help="Cut and cache chips, stop.")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    ensure_masked_copy(args.data, args.masked)
    pairs, chips, info = pair_chips(args.data, args.masked, args.work / "cache",
                                    limit=args.limit, seed=args.seed)
    print(f"{info['images']} image pairs, chips in {info['chip_seconds']} s "
          f"(cached), excluded {info['excluded']}", flush=True)
    if args.chips_only:
        return
    device = default_device()
    summary_path = args.work / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for target, train_on, test_on in parse_runs(args.runs):
        config = FineTuneConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                trunk_lr=args.trunk_lr, freeze=args.freeze,
                                patience=args.patience, seed=args.seed)
        run, result = run_finetune(pairs, chips, target, config, train_on=train_on,
                                   test_on=test_on, split_kind=args.split, seed=args.seed,
                                   split_dir=args.work / "splits", device=device)
        result["meta"].update(info, limit=args.limit, dataset=str(args.data),
                              masked_copy=str(args.masked), torch_threads=torch.get_num_threads(),
                              command=" ".join(sys.argv))
        name = f"{target}-{train_on}-{'+'.join(test_on)}" + (f"-{args.tag}" if args.tag else "")
        out = args.work / name
        write_report(result, out)
        save_finetuned(run, out / "model.pt", {"train_on": train_on, "split": args.split,
                                               "seed": args.seed, "limit": args.limit})
        meta = result["meta"]
        summary[name] = {
            "summary": result["summary"], "best_epoch": run.best_epoch,
            "epochs_run": len(run.history), "seconds_per_epoch": meta["seconds_per_epoch"],
            "train_seconds": meta["train_seconds"], "history": run.history,
            "test_seconds": {k: v["predict_seconds"]
                             for k, v in result["results"][target].items()},
            "split_sizes": meta["split_sizes"][target], "config": meta["config"],
        }
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary[name]["summary"], indent=1), flush=True)


if __name__ == "__main__":
    main()
