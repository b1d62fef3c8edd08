"""``maskface attributes``: how much of sex, race and age a mask gives away (UTKFace)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from maskface.cli_common import MaskfaceGroup, listed_choice

# Read when a command runs: importing maskface.attributes loads scikit-learn.
_SPLITS = listed_choice("maskface.attributes.splits", "SPLIT_KINDS", "split kind")
_TARGETS = listed_choice("maskface.attributes.targets", "TARGETS", "target")

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_COMMON = [
    click.argument("data", type=_DIR),
    click.argument("masked", type=_DIR),
    click.option("--split", "split_kind", type=_SPLITS, default="uniform",
                 show_default=True, help="uniform: stratified on the target; or random."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--limit", type=int, default=None, help="Use a seeded random subset."),
    click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Folder for cached embeddings and chips [OUT/cache]."),
]


def _common(func):
    for option in reversed(_COMMON):
        func = option(func)
    return func


@click.group(cls=MaskfaceGroup, context_settings={"help_option_names": ["-h", "--help"]})
def attributes() -> None:
    """Predict sex, race and age from masked and unmasked faces (UTKFace).

    DATA is a UTKFace root, MASKED its masked copy made by
    'maskface datasets mask utkface DATA MASKED --styles surgical,n95,kn95,cloth --vary'.

    \b
    Examples:
      maskface attributes study utk/ utk-masked/ --out study/
      maskface attributes train utk/ utk-masked/ --target race --train-on masked --out race.pkl
      maskface attributes eval race.pkl utk/ utk-masked/ --out race-report/
      maskface attributes finetune utk/ utk-masked/ --target sex --epochs 4 --out ft-sex/
    """


@attributes.command()
@_common
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.html, confusion/*.png and splits/.")
def study(data: Path, masked: Path, split_kind: str, seed: int, limit: int | None,
          cache: Path | None, out: Path) -> None:
    """All targets, train unmasked/masked x test unmasked/masked, with a report.

    \b
    Example:
      maskface attributes study ../shared/data/utkface /tmp/utk-masked --out study/ --split random
    """
    from maskface.attributes.pipeline import pair_features
    from maskface.attributes.report import write_report
    from maskface.attributes.study import run_study

    pairs, features, info = pair_features(data, masked, cache or out / "cache", limit=limit,
                                          seed=seed)
    result = run_study(features, pairs.attributes, split_kind=split_kind, seed=seed,
                       styles=pairs.styles, names=[p.name for p in pairs.unmasked],
                       split_dir=out / "splits")
    result["meta"].update(info)
    paths = write_report(result, out)
    click.echo(json.dumps(result["summary"], indent=1))
    click.echo(f"wrote {paths['json']} and {paths['html']}")


@attributes.command()
@_common
@click.option("--target", type=_TARGETS, required=True)
@click.option("--train-on", type=click.Choice(["unmasked", "masked"]), default="masked",
              show_default=True, help="Which copy the model learns from.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Model file (pickle) to write; the split CSV goes beside it.")
def train(data: Path, masked: Path, split_kind: str, seed: int, limit: int | None,
          cache: Path | None, target: str, train_on: str, out: Path) -> None:
    """Fit the embedding baseline for one target (model picked on validation).

    \b
    Example:
      maskface attributes train utk/ utk-masked/ --target age --train-on masked --out age.pkl
    """
    from maskface.attributes.train_eval import train_attribute_model

    trained = train_attribute_model(data, masked, target, out, train_on=train_on,
                                    split_kind=split_kind, seed=seed, limit=limit, cache=cache)
    model = trained.model
    click.echo(f"{target}: picked {model.name} on validation {model.val_scores} "
               f"in {model.fit_seconds:.1f} s; wrote {out} and {trained.split_csv}")


@attributes.command(name="eval")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, path_type=Path))
@click.argument("data", type=_DIR)
@click.argument("masked", type=_DIR)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for cached embeddings [beside MODEL].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.html and confusion/*.png.")
def evaluate_cmd(model_path: Path, data: Path, masked: Path, cache: Path | None,
                 out: Path) -> None:
    """Score a trained MODEL on the test part of its split, unmasked and masked.

    \b
    Example:
      maskface attributes eval race.pkl utk/ utk-masked/ --out race-report/
    """
    from maskface.attributes.train_eval import evaluate_attribute_model

    result, paths = evaluate_attribute_model(model_path, data, masked, out, cache=cache)
    click.echo(json.dumps(result["summary"], indent=1))
    click.echo(f"wrote {paths['json']} and {paths['html']}")


_TEST_ON = {"unmasked": ("unmasked",), "masked": ("masked",), "both": ("unmasked", "masked")}


@attributes.command()
@_common
@click.option("--target", type=_TARGETS, required=True)
@click.option("--train-on", "--train", "train_on", type=click.Choice(["unmasked", "masked"]),
              default="masked", show_default=True, help="Which copy the network learns from.")
@click.option("--test-on", "--test", "test_on", type=click.Choice(list(_TEST_ON)),
              default="both", show_default=True, help="Which copy of the test part to score.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for report.json, report.html, confusion/*.png, splits/, model.pt.")
@click.option("--epochs", type=click.IntRange(1), default=8, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Head learning rate.")
@click.option("--trunk-lr", type=float, default=1e-4, show_default=True,
              help="Learning rate of the pretrained trunk.")
@click.option("--freeze", type=click.IntRange(0, 6), default=0, show_default=True,
              help="Leading trunk stages kept fixed (dlib: stem + 5 stages); faster on CPU.")
@click.option("--shift", type=click.IntRange(0), default=6, show_default=True,
              help="Largest random shift of a training chip, in pixels (mirroring is on).")
@click.option("--patience", type=click.IntRange(1), default=3, show_default=True,
              help="Stop after this many epochs without a better validation score.")
@click.option("--backbone", default="dlib-resnet", show_default=True,
              help="dlib-resnet (dlib's face weights, offline) or timm:<model> (needs timm).")
@click.option("--timm-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Local pretrained weights for a timm backbone (never "
                                 "downloaded); without it a timm network starts at random.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA when present.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="CPU threads for torch [all cores]; 1 is much faster when other jobs "
                   "share the cores.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def finetune(data: Path, masked: Path, split_kind: str, seed: int, limit: int | None,
             cache: Path | None, target: str, train_on: str, test_on: str, out: Path,
             epochs: int, batch_size: int, lr: float, trunk_lr: float, freeze: int, shift: int,
             patience: int, backbone: str, timm_weights: Path | None, device: str,
             threads: int | None, quiet: bool) -> None:
    """Fine-tune a face CNN for one target on the chips of the study's split, with a report.

    The default network is dlib's face-recognition ResNet with dlib's weights (nothing is
    downloaded) and a fresh head; the validation part picks the best epoch. On 2 CPU cores
    an epoch over the 5,544 training chips of the full sample took 1-7 min with --freeze 4
    (depending on other load), about twice that per image when training every layer; a GPU
    is used when present. Chips are cached (~135 kB per image pair): share one --cache.

    \b
    Example:
      maskface attributes finetune ../shared/data/utkface /tmp/utk-masked --target race \\
          --train masked --test masked --epochs 4 --out ft-race/ --cache ft-cache/
    """
    import torch

    from maskface.attributes.finetune import (
        FineTuneConfig,
        backbone_from_name,
        default_device,
        save_finetuned,
    )
    from maskface.attributes.pipeline import pair_chips, run_finetune
    from maskface.attributes.report import write_report

    if threads is not None:
        # Process-wide; oneDNN's threads spin-wait, so competing with other jobs for the same
        # cores can make each step many times slower than one thread alone.
        torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available here", param_hint="--device")
    if timm_weights is not None and not backbone.startswith("timm:"):
        raise click.BadParameter("only for a timm:<model> backbone", param_hint="--timm-weights")
    try:
        net = backbone_from_name(backbone, **(
            {"pretrained": True, "weights": timm_weights} if timm_weights else {}))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--backbone") from None
    config = FineTuneConfig(backbone=net, epochs=epochs, batch_size=batch_size, lr=lr,
                            trunk_lr=trunk_lr, freeze=freeze, shift=shift, patience=patience,
                            seed=seed)
    dev = default_device() if device == "auto" else torch.device(device)
    pairs, chips, info = pair_chips(data, masked, cache or out / "cache", limit=limit,
                                    seed=seed, progress=not quiet)
    run, result = run_finetune(pairs, chips, target, config, train_on=train_on,
                               test_on=_TEST_ON[test_on], split_kind=split_kind, seed=seed,
                               split_dir=out / "splits", device=dev, progress=not quiet)
    result["meta"].update(info, limit=limit, dataset=str(data), masked_copy=str(masked))
    model_path = save_finetuned(run, out / "model.pt", {
        "train_on": train_on, "split": split_kind, "seed": seed, "limit": limit,
        "split_csv": result["meta"]["split_csv"]})
    paths = write_report(result, out)
    click.echo(json.dumps(result["summary"], indent=1))
    click.echo(f"best epoch {run.best_epoch} of {len(run.history)}, "
               f"{result['meta']['seconds_per_epoch']} s per epoch; wrote {paths['json']}, "
               f"{paths['html']} and {model_path}")
