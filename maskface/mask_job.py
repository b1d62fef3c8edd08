"""The batch job behind ``maskface apply``: mask every image of a tree, with sidecar files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from maskface import __version__
from maskface.batch.runner import JobOutput, JobResult
from maskface.geometry.analysers import create_analyser
from maskface.synthesis import mask_image


@dataclass
class MaskJob:
    """Masks the faces of one image in ``per_image`` variants, styles drawn from ``styles``.

    Variants take distinct styles while there are any left, in a seeded random order, so
    ``per_image=len(styles)`` gives every style once. One variant keeps the input's file name
    (so existing loaders read the masked tree); several are named ``<stem>_<k>_<style>``.
    """

    styles: tuple[str, ...] = ("surgical",)
    per_image: int = 1
    wear: tuple[str, ...] = ("correct",)
    faces: str = "largest"
    renderer: str = "2d"
    analyser: str = "mediapipe"
    vary: bool = False
    style_params: dict[str, Any] = field(default_factory=dict)
    save_alpha: bool = False
    save_json: bool = False
    image_format: str | None = None  # output extension (".png", ...); None keeps the input's
    keep_unmasked: bool = False
    _finder: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_finder"] = None  # models load once per worker, not through pickling
        return state

    def __call__(self, image: np.ndarray, *, relpath: str, seed: int) -> JobResult:
        if self._finder is None:
            self._finder = create_analyser(self.analyser)
        rng = np.random.default_rng(seed)
        found = self._finder(image)
        if self.faces == "largest":
            found = found[:1]
        path = PurePosixPath(relpath)
        ext = self.image_format or path.suffix.lower()
        if not found:
            outputs = [JobOutput(str(path.with_suffix(ext)), image)] if self.keep_unmasked else []
            return JobResult("no_face", outputs, {"faces": 0})

        order = rng.permutation(len(self.styles))
        outputs, drawn = [], []
        for k in range(self.per_image):
            style = self.styles[order[k % len(order)]]
            wear = self.wear[int(rng.integers(len(self.wear)))]
            variant_seed = int(rng.integers(2**63))
            result = mask_image(
                image, style, wear=wear, faces=found, renderer=self.renderer,
                seed=variant_seed, vary=self.vary, **self.style_params,
            )
            name = path.stem if self.per_image == 1 else f"{path.stem}_{k}_{style}"
            base = str(path.with_name(name))
            outputs.append(JobOutput(base + ext, result.image))
            if self.save_alpha:
                outputs.append(JobOutput(base + ".mask.png", result.alpha))
            if self.save_json:
                record = {
                    "input": relpath, "seed": variant_seed, "maskface": __version__,
                    "renderer": self.renderer, "analyser": self.analyser, "faces": result.faces,
                }
                outputs.append(JobOutput(base + ".json", record))
            drawn.append(style)
        return JobResult("ok", outputs, {"faces": len(found), "styles": drawn})
