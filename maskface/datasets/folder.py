"""Any ``<identity>/<image>`` tree: CASIA-WebFace (``0000045/001.jpg``), VGGFace2
(``n000002/0001_01.jpg``, root = its ``train/`` or ``test/``), or your own photos.

The identity is the first folder under the root; images deeper down belong to that identity
(their sub-folders are kept in the ``subfolder`` attribute). Images lying directly in the root
have no identity and are reported as problems.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskface.datasets.base import (
    Dataset,
    DatasetError,
    Problem,
    Sample,
    describe_folder,
    is_image,
)
from maskface.imageio import iter_images


class FolderDataset(Dataset):
    """Identity = first folder level under ``root``."""

    name = "folder"
    description = "Any <identity>/<image> tree (CASIA-WebFace, VGGFace2, your own)"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        if not self.root.is_dir() or not any(e.is_dir() for e in os.scandir(self.root)):
            raise DatasetError(
                f"{self.root} is not an identity tree: expected <identity>/<image> folders, "
                f"found {describe_folder(self.root) if self.root.is_dir() else 'a file'}."
            )

    @property
    def image_root(self) -> Path:
        return self.root

    def _scan(self) -> tuple[list[Sample], list[Problem]]:
        samples: list[Sample] = []
        problems: list[Problem] = []
        for path in iter_images(self.root):
            if not is_image(path.name):
                continue
            parts = path.relative_to(self.root).parts
            if len(parts) == 1:
                problems.append(Problem(parts[0], 0, "image outside an identity folder"))
                continue
            attributes = {"subfolder": "/".join(parts[1:-1])} if len(parts) > 2 else {}
            samples.append(Sample(path, parts[0], attributes))
        if not samples:
            raise DatasetError(f"{self.root} has identity folders but no images in them.")
        return samples, problems


class CasiaWebFaceDataset(FolderDataset):
    name = "casia-webface"
    description = "CASIA-WebFace as <identity>/<image> (0000045/001.jpg)"


class VggFace2Dataset(FolderDataset):
    name = "vggface2"
    description = "VGGFace2 train/ or test/ as <identity>/<image> (n000002/0001_01.jpg)"
