"""The batch job behind ``maskface apply``: mask every image of a tree, with sidecar files."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any, ClassVar

import numpy as np

from maskface import __version__
from maskface.batch.manifest import display_name
from maskface.batch.runner import JobOutput, JobResult
from maskface.geometry.analysers import create_analyser
from maskface.imageio import ALPHA_EXTENSIONS, to_rgb
from maskface.synthesis import MIN_FACE, choose_faces, mask_image


@dataclass
class MaskJob:
    """Masks the faces of one image in ``per_image`` variants, styles drawn from ``styles``.

    Variants take distinct styles while there are any left, in a seeded random order, so
    ``per_image=len(styles)`` gives every style once. One variant keeps the input's file name
    (so existing loaders read the masked tree); several are named ``<stem>_<k>_<style>``.
    Faces are chosen as :func:`maskface.mask_image` chooses them (``faces``, ``min_face``).
    The status is ``ok`` only when a mask was drawn; a variant on which nothing could be
    drawn is not written. RGBA inputs keep their transparency in formats that store it.
    """

    styles: tuple[str, ...] = ("surgical",)
    per_image: int = 1
    wear: tuple[str, ...] = ("correct",)
    faces: str = "largest"
    renderer: str = "2d"
    analyser: str = "mediapipe"
    aligned: str | None = None  # inputs are crops aligned to this template (no detection)
    vary: bool = False
    style_params: dict[str, Any] = field(default_factory=dict)
    save_alpha: bool = False
    save_json: bool = False
    image_format: str | None = None  # output extension (".png", ...); None keeps the input's
    keep_unmasked: bool = False
    min_face: float = MIN_FACE
    _finder: Any = field(default=None, init=False, repr=False, compare=False)
    # The runner reads inputs with their alpha channel for this job.
    keeps_alpha: ClassVar[bool] = True

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_finder"] = None  # models load once per worker, not through pickling
        return state

    def options(self) -> dict[str, Any]:
        """The settings that decide the outputs (recorded with a run, compared on resume)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return {"job": "MaskJob", **{k: list(v) if isinstance(v, tuple) else v
                                     for k, v in values.items()}}

    def _extension(self, path: PurePosixPath) -> str:
        return self.image_format or path.suffix.lower()

    def output_names(self, relpath: str) -> list[str]:
        """Every output this job may write for ``relpath`` (the runner checks that no two
        inputs share one)."""
        path = PurePosixPath(relpath)
        ext = self._extension(path)
        if self.per_image == 1:
            bases = [path.stem]
        else:
            bases = [f"{path.stem}_{k}_{style}" for k in range(self.per_image)
                     for style in dict.fromkeys(self.styles)]
        names = []
        for base in bases:
            names.append(base + ext)
            if self.save_alpha:
                names.append(base + ".mask.png")
            if self.save_json:
                names.append(base + ".json")
        if self.keep_unmasked and self.per_image > 1:
            names.append(path.stem + ext)
        return [str(path.with_name(n)) for n in names]

    def __call__(self, image: np.ndarray, *, relpath: str, seed: int,
                 output: str | None = None) -> JobResult:
        """Mask one image; outputs are named after ``output`` (default: ``relpath``)."""
        if self._finder is None:
            self._finder = create_analyser(
                self.analyser, **({"aligned": self.aligned} if self.aligned else {}))
        rng = np.random.default_rng(seed)
        path = PurePosixPath(output or relpath)
        ext = self._extension(path)
        found = self._finder(to_rgb(image))
        chosen = choose_faces(found, self.faces, min_face=self.min_face)
        keep = image if ext in ALPHA_EXTENSIONS or image.ndim == 2 else image[..., :3]

        order = rng.permutation(len(self.styles))
        outputs, drawn = [], []
        for k in range(self.per_image if chosen else 0):
            style = self.styles[order[k % len(order)]]
            wear = self.wear[int(rng.integers(len(self.wear)))]
            variant_seed = int(rng.integers(2**63))
            result = mask_image(
                image, style, wear=wear, faces=chosen, renderer=self.renderer,
                seed=variant_seed, vary=self.vary, **self.style_params,
            )
            if not result.faces:
                continue  # nothing could be drawn: the unmasked image is not a masked output
            name = path.stem if self.per_image == 1 else f"{path.stem}_{k}_{style}"
            base = str(path.with_name(name))
            pixels = result.image if keep is image else result.image[..., :3]
            outputs.append(JobOutput(base + ext, pixels))
            if self.save_alpha:
                outputs.append(JobOutput(base + ".mask.png", result.alpha))
            if self.save_json:
                record = {
                    "input": display_name(relpath), "seed": variant_seed,
                    "maskface": __version__, "renderer": self.renderer,
                    "analyser": self.analyser, "faces": result.faces,
                }
                outputs.append(JobOutput(base + ".json", record))
            drawn.append(style)
        if drawn:
            return JobResult("ok", outputs, {"faces": len(chosen), "styles": drawn})
        if not found:
            reason = "no face found"
        elif not chosen:
            reason = (f"{len(found)} face(s) found, none at least {self.min_face:g} px "
                      "(see min_face)")
        else:
            reason = f"{len(chosen)} face(s) found, but no mask could be drawn on them"
        outputs = [JobOutput(str(path.with_suffix(ext)), keep)] if self.keep_unmasked else []
        return JobResult("no_face", outputs, {"faces": 0, "found": len(found)}, reason=reason)
