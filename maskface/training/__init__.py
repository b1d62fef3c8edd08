"""Training recognizers that stay accurate under masks (``maskface train``).

    from maskface.training import run_training, TrainConfig, ChipSettings
    run_training([("lfw", "~/data/lfw"), ("utkface", "~/data/utkface")], "runs/m",
                 TrainConfig(epochs=6), ChipSettings(variants=3), exclude_folds="6-10")

A run folder ends up holding ``model.safetensors`` (the best epoch's weights, with
within-face whitening folded in when it helps validation; loadable with ``--recognizer torch
--timm-arch dlib-resnet`` or :func:`install_model`), ``best-epoch.safetensors`` (as trained),
``model.onnx``,
``checkpoint.pt`` (for ``--resume``) and ``report.json``/``report.html``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from maskface.cache import cache_dir
from maskface.training.data import (
    ChipSettings,
    ChipStore,
    Source,
    TrainingDataError,
    gather_sources,
    open_store,
    prepare_store,
    teacher_embeddings,
)
from maskface.training.losses import LOSSES, parse_losses
from maskface.training.trainer import TrainConfig, TrainingError, TrainResult, train


def models_dir() -> Path:
    """Where :func:`install_model` puts named models: ``<cache>/models``."""
    return cache_dir() / "models"


def install_model(name: str, weights: str | os.PathLike[str]) -> Path:
    """Copy trained dlib-resnet weights to :func:`models_dir` so that
    ``create_recognizer(name)`` (and ``--recognizer NAME``) loads them."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise TrainingDataError(f"model name {name!r}: use letters, digits, '.', '_', '-'")
    target = models_dir() / f"{name}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(weights, tmp)
    os.replace(tmp, target)
    return target


def _data_summary(sources: Sequence[Source], excluded: int, how: list[str]) -> dict:
    def people(split: str) -> int:
        return len({s.identity for s in sources if s.split == split and s.identity})

    return {
        "images_train": sum(s.split == "train" for s in sources),
        "images_val": sum(s.split == "val" for s in sources),
        "people_train": people("train"),
        "people_val": people("val"),
        "unlabelled_images": sum(s.identity is None for s in sources),
        "people_excluded": excluded,
        "excluded_by": "; ".join(how) or "nothing",
    }


def run_training(data: Sequence[tuple[str, str]], out: str | os.PathLike[str],
                 config: TrainConfig | None = None, settings: ChipSettings | None = None, *,
                 chips: str | os.PathLike[str] | None = None,
                 exclude_protocols: Sequence[str | os.PathLike[str]] = (),
                 exclude_folds: str | None = None, val_fraction: float = 0.1,
                 max_images: dict[str, int] | None = None,
                 init: str | os.PathLike[str] | None = None, name: str | None = None,
                 limit: int | None = None, workers: int | None = None, resume: bool = False,
                 onnx: bool = True, progress: bool = False,
                 log: Callable[[str], None] | None = None) -> TrainResult:
    """Everything ``maskface train`` does: gather sources (test people left out), build or
    reuse the chip store, train, export and report."""
    from maskface.training.report import write_report
    from maskface.training.trainer import _dist

    config = config or TrainConfig()
    settings = settings or ChipSettings(seed=config.seed)
    say = log or print
    out = Path(out)
    excluded: set[str] = set()
    how: list[str] = []
    for p in exclude_protocols:
        from maskface.protocols import protocol_identities

        excluded |= protocol_identities(p)
        how.append(f"people of protocol {p}")
    if exclude_folds:
        from maskface.datasets.lfw import fold_people

        roots = [root for n, root in data if n.lower() == "lfw"]
        if not roots:
            raise TrainingDataError("--exclude-folds names LFW View 2 folds, but no "
                                    "--data lfw=FOLDER is given")
        for root in roots:
            excluded |= fold_people(root, exclude_folds)
        how.append(f"people of LFW View 2 folds {exclude_folds}")
    sources = gather_sources(data, exclude_people=excluded, val_fraction=val_fraction,
                             seed=config.seed, limit=limit, max_images=max_images)
    rank, world = _dist()
    store_dir = Path(chips) if chips is not None else out / "chips"
    if rank == 0:
        summary = _data_summary(sources, len(excluded), how)
        say(f"{summary['images_train']} training images ({summary['people_train']} people, "
            f"{summary['unlabelled_images']} unlabelled), {summary['images_val']} validation "
            f"images ({summary['people_val']} people); {len(excluded)} people excluded")
        store = prepare_store(sources, store_dir, settings, workers=workers, progress=progress)
        teacher_embeddings(store, progress=progress)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank != 0:
        store = open_store(store_dir)
    result = train(store, out, config, resume=resume, init=init, progress=progress, log=say)
    if rank == 0:
        weights = out / "model.safetensors"
        if onnx:
            from maskface.recognizers.dlib_resnet import export_onnx

            export_onnx(out / "model.onnx", result.model, alignment=settings.alignment)
        if name:
            say(f"installed as {name}: {install_model(name, weights)}")
        write_report(out, {"history": result.history, "best_epoch": result.best_epoch,
                           "whitening": result.whitening,
                           "config": config.as_dict(), "chips": settings.as_dict(),
                           "data": _data_summary(sources, len(excluded), how),
                           "datasets": [f"{n}={r}" for n, r in data]})
    return result


__all__ = [
    "LOSSES",
    "ChipSettings",
    "ChipStore",
    "Source",
    "TrainConfig",
    "TrainResult",
    "TrainingDataError",
    "TrainingError",
    "gather_sources",
    "install_model",
    "models_dir",
    "open_store",
    "parse_losses",
    "prepare_store",
    "run_training",
    "train",
]
