"""Where the masked copy of each image is, read from the masked copy's batch manifest.

``maskface datasets mask`` (like ``maskface apply``) records one manifest row per input: its
path relative to the image folder, the status (``ok``, ``no_face``, ``unreadable``, ``error``)
and the outputs. An image whose row is missing, not ``ok``, or whose output file is gone has
no masked copy; the protocols report the pairs that need it instead of silently using the
unmasked image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskface.batch.manifest import read_manifest
from maskface.datasets.base import ProtocolFileError, is_image

MANIFEST_NAMES: tuple[str, ...] = ("manifest.csv", "manifest.parquet")


@dataclass
class MaskedCopy:
    """The masked images of a dataset: ``outputs[relpath]`` = masked image paths (variants)."""

    root: Path
    manifest: Path
    outputs: dict[str, list[str]]
    statuses: dict[str, str]

    @classmethod
    def open(cls, root: str | os.PathLike[str], manifest: str | os.PathLike[str] | None = None,
             ) -> MaskedCopy:
        """Read the manifest (default: ``manifest.csv`` or ``.parquet`` in ``root``)."""
        root = Path(root)
        if manifest is None:
            found = [root / n for n in MANIFEST_NAMES if (root / n).is_file()]
            if not found:
                raise ProtocolFileError(
                    f"The masked copy {root} has no {' or '.join(MANIFEST_NAMES)}; give the "
                    "folder that 'maskface datasets mask' wrote the images and manifest into."
                )
            manifest = found[0]
        manifest = Path(manifest)
        if not manifest.is_file():
            raise ProtocolFileError(f"The manifest {manifest} does not exist.")
        outputs: dict[str, list[str]] = {}
        statuses: dict[str, str] = {}
        for row in read_manifest(manifest):
            statuses[row.input] = row.status
            images = [o for o in row.outputs if is_image(Path(o).name)]
            outputs[row.input] = [o for o in images if (root / o).is_file()]
        return cls(root, manifest, outputs, statuses)

    def resolve(self, relpath: str, rng: np.random.Generator) -> tuple[str | None, str]:
        """A masked variant of ``relpath`` (picked with ``rng`` when there are several), or
        ``None`` and the reason there is none."""
        status = self.statuses.get(relpath)
        if status is None:
            return None, f"{relpath} is not in the masked copy's manifest"
        if status != "ok":
            return None, f"{relpath} has no masked copy (status {status})"
        variants = self.outputs[relpath]
        if not variants:
            return None, f"the masked copy of {relpath} is missing on disk"
        return variants[int(rng.integers(len(variants)))], ""
