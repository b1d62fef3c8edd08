"""``maskface train``: fine-tune a recognizer to stay accurate under masks."""

from __future__ import annotations

from pathlib import Path

import click

from maskface.cli_common import RECOGNIZER_ALIGNMENTS, renderer_choice, style_choice

_EXAMPLE = """
\b
Example (the recipe of the shipped dlib-resnet-masked; LFW View 2 folds 6-10 held out):
  maskface train --data lfw=~/data/lfw --data utkface=~/data/utkface \\
      --exclude-folds 6-10 --losses distill --epochs 8 --out runs/masked
  maskface datasets protocols lfw ~/data/lfw heldout/ --folds 6-10 --masked-root ~/data/lfw-masked
  maskface eval --recognizer torch --model runs/masked/model.safetensors \\
      --timm-arch dlib-resnet --protocol heldout/ --configs all
"""


def _data(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        name, eq, root = v.partition("=")
        if not eq or not name or not root:
            raise click.BadParameter(f"{v!r}: write ADAPTER=FOLDER, e.g. lfw=~/data/lfw",
                                     param_hint="--data")
        out.append((name.strip(), str(Path(root).expanduser())))
    return out


def _caps(values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for v in values:
        name, _, n = v.partition("=")
        if not n.strip().isdigit() or not name.strip():
            raise click.BadParameter(f"{v!r}: write ADAPTER=N, e.g. utkface=1500",
                                     param_hint="--max-images")
        out[name.strip()] = int(n)
    return out


@click.command("train", epilog=_EXAMPLE)
@click.option("--data", "data", multiple=True, required=True, metavar="ADAPTER=FOLDER",
              help="A dataset to learn from (repeatable); see 'maskface datasets list'. "
                   "Labelled ones feed every loss, unlabelled ones (UTKFace) distillation.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Run folder: checkpoint, best weights, exports and report.")
@click.option("--chips", type=click.Path(path_type=Path), default=None,
              help="Chip store folder (default OUT/chips); share it between recipes.")
@click.option("--exclude-protocol", "exclude_protocol", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="Leave out the people of this protocol CSV or folder (repeatable).")
@click.option("--exclude-folds", default=None, metavar="FOLDS",
              help="Leave out the people of these LFW View 2 folds, e.g. 6-10.")
@click.option("--max-images", "max_images", multiple=True, metavar="ADAPTER=N",
              help="Use a seeded random N images of that dataset (repeatable).")
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=0.1, show_default=True,
              help="Share of the labelled people held out to pick the best epoch.")
@click.option("--variants", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Masked variants rendered ahead per image.")
@click.option("--renderers", type=renderer_choice(many=True), default="2d", show_default=True,
              help="Comma-separated renderers of the masked variants.")
@click.option("--styles", type=style_choice(many=True), default=None,
              help="Comma-separated styles (default: every style drawn at random).")
@click.option("--alignment", type=click.Choice(
              [a for a in RECOGNIZER_ALIGNMENTS if a.startswith("dlib150")]),
              default="dlib150", show_default=True,
              help="How chips are cut: dlib's fit of all 68 points, or of the eyes, brows and "
                   "nose bridge only (steadier under masks; the model remembers it).")
@click.option("--losses", default="distill", show_default=True,
              help="Loss terms with weights: distill, consistency, arcface, cosface, sphereface, "
                   "triplet, contrastive, e.g. 'distill=1,consistency=1'.")
@click.option("--epochs", type=click.IntRange(1), default=6, show_default=True)
@click.option("--batch-size", type=click.IntRange(2), default=32, show_default=True)
@click.option("--masked-fraction", type=click.FloatRange(0, 1), default=0.75,
              show_default=True, help="Share of the faces of a batch that wear a mask.")
@click.option("--lr", type=float, default=2e-3, show_default=True,
              help="Relative step: each tensor moves by about lr times its mean magnitude.")
@click.option("--freeze", type=click.IntRange(0, 6), default=1, show_default=True,
              help="Input stages kept fixed (1: the stem).")
@click.option("--augment", type=click.FloatRange(0, 2), default=1.0, show_default=True,
              help="Strength of the chip augmentations (0: none).")
@click.option("--ema", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True,
              help="Validate and keep a moving average of the weights with this decay per "
                   "step, e.g. 0.998 (0: the weights as they are).")
@click.option("--whiten/--no-whiten", default=True, show_default=True,
              help="Fold within-face whitening into the kept model when it raises the "
                   "validation score.")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None,
              help="Default: one pass over the training images.")
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Start from these weights (safetensors) instead of dlib's.")
@click.option("--name", default=None,
              help="Also install the model under this name, for --recognizer NAME.")
@click.option("--limit", type=click.IntRange(1), default=None, hidden=True,
              help="First images of each dataset only (for quick trials).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes preparing chips (default: one per core).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in OUT after a stop.")
@click.option("--onnx/--no-onnx", default=True, show_default=True,
              help="Also export the model as ONNX.")
def train_command(data, out, chips, exclude_protocol, exclude_folds, max_images, val_fraction,
                  variants, renderers, styles, alignment, losses, epochs, batch_size,
                  masked_fraction, lr, freeze, augment, ema, whiten, steps_per_epoch, init, name,
                  limit, workers, seed, resume, onnx) -> None:
    """Fine-tune the dlib ResNet port so that masked faces keep their identity.

    Chips are cut as 'maskface eval' cuts them (the detector runs on the masked image),
    rendered ahead with several masks each, and cached in the chip store; a killed
    preparation or training resumes with the same command (plus --resume for training).
    """
    from maskface.training import run_training
    from maskface.training.data import ChipSettings
    from maskface.training.losses import parse_losses
    from maskface.training.trainer import TrainConfig

    settings = ChipSettings(variants=variants, renderers=tuple(renderers),
                            styles=tuple(styles or ()), alignment=alignment, seed=seed)
    config = TrainConfig(losses=parse_losses(losses), epochs=epochs, batch_size=batch_size,
                         masked_fraction=masked_fraction, lr=lr, freeze=freeze,
                         augment=augment, ema=ema, whiten=whiten, seed=seed,
                         steps_per_epoch=steps_per_epoch)
    result = run_training(
        _data(data), out, config, settings, chips=chips, exclude_protocols=exclude_protocol,
        exclude_folds=exclude_folds, max_images=_caps(max_images), val_fraction=val_fraction,
        init=init, name=name,
        limit=limit, workers=workers, resume=resume, onnx=onnx, progress=True, log=click.echo)
    click.echo(f"best epoch {result.best_epoch} (validation {result.best_score:.4f}); "
               f"model: {out / 'model.safetensors'}; report: {out / 'report.html'}")
