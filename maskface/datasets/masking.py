"""A masked copy of a dataset in the same layout, so that the same loader reads it.

The images under the dataset's image folder are masked with :func:`maskface.batch.runner.run_batch`
(one manifest row per image, resumable, atomic writes) into the matching folder under ``out``,
and the dataset's protocol files (pairs, identity lists, tables) are copied to the matching
places. With one variant per image the file names are kept; with several, LFW-style loaders read
``<Name>_NNNN_<k>_<style>`` names as variants, other loaders may not. The job is a plain
per-image job, so a distributed engine can drive the same one.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskface.atomic import write_bytes_atomic
from maskface.batch.runner import BatchSummary, Job, run_batch
from maskface.datasets.base import Dataset, DatasetError


def masked_image_root(dataset: Dataset, out: str | os.PathLike[str]) -> Path:
    """Where the masked copy of ``dataset.image_root`` goes under ``out``."""
    out = Path(out)
    if dataset.image_root.is_relative_to(dataset.root) and dataset.root.is_dir():
        return out / dataset.image_root.relative_to(dataset.root)
    return out


def copy_protocol_files(dataset: Dataset, out: str | os.PathLike[str]) -> list[Path]:
    """Copy the protocol files to the same places under ``out``; return the copies."""
    out = Path(out)
    copies = []
    for path in dataset.protocol_files:
        if dataset.root.is_dir() and path.is_relative_to(dataset.root):
            target = out / path.relative_to(dataset.root)
        else:  # beside the image folder, outside root: the loader also looks in the image folder
            target = masked_image_root(dataset, out) / path.name
        write_bytes_atomic(target, path.read_bytes())
        copies.append(target)
    return copies


def mask_dataset(
    dataset: Dataset, out: str | os.PathLike[str], job: Job, *, workers: int | None = None,
    seed: int = 0, manifest: str = "manifest.csv", resume: bool = True, progress: bool = True,
    scheduler: str | None = None, force: bool = False,
) -> tuple[BatchSummary, list[Path]]:
    """Mask ``dataset`` into ``out`` with ``job``; return the run summary and protocol copies.

    The manifest is written in the masked image folder (:func:`masked_image_root`);
    ``scheduler`` and ``force`` are as in :func:`maskface.batch.runner.run_batch`.
    """
    out = Path(out)
    if out.resolve() == dataset.root.resolve() or out.resolve().is_relative_to(
            dataset.root.resolve()):
        raise DatasetError(f"The output {out} is inside the dataset root {dataset.root}.")
    copies = copy_protocol_files(dataset, out)
    summary = run_batch(dataset.image_root, masked_image_root(dataset, out), job,
                        workers=workers, seed=seed, manifest=manifest, resume=resume,
                        progress=progress, scheduler=scheduler, force=force)
    return summary, copies
