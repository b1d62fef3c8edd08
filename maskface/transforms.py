"""A mask augmentation in the style of albumentations: ``AddMask(p=0.5)(image=img)["image"]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from maskface.geometry.analysers import FaceAnalyser, create_analyser
from maskface.styles import list_styles
from maskface.styles.base import WEAR_STYLES
from maskface.synthesis import mask_image


class AddMask:
    """Puts a random mask on the largest face (or all faces) of an image, with probability ``p``.

    Parameters are drawn by :meth:`get_params` from the transform's own seeded generator and
    applied by :meth:`apply`, so a sequence of calls is reproducible from ``seed``. Calling the
    transform returns the other keyword arguments unchanged plus ``image`` (masked),
    ``mask_alpha`` (uint8 coverage) and ``mask_params`` (what was drawn, or None).
    """

    def __init__(
        self,
        styles: Sequence[str] | None = None,
        wear: Sequence[str] = ("correct",),
        *,
        vary: bool = True,
        faces: str = "largest",
        renderer: str = "2d",
        analyser: str | FaceAnalyser = "mediapipe",
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.styles = tuple(styles or list_styles())
        unknown = set(self.styles) - set(list_styles())
        if unknown:
            raise ValueError(f"unknown styles {sorted(unknown)}; choose from {list_styles()}")
        bad_wear = set(wear) - set(WEAR_STYLES)
        if bad_wear:
            raise ValueError(f"unknown wear {sorted(bad_wear)}; choose from {WEAR_STYLES}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.wear = tuple(wear)
        self.vary = vary
        self.faces = faces
        self.renderer = renderer
        self.analyser = create_analyser(analyser) if isinstance(analyser, str) else analyser
        self.p = p
        self.rng = np.random.default_rng(seed)

    def get_params(self) -> dict[str, Any]:
        """Draw this call's parameters: whether to apply, style, wear and a render seed."""
        return {
            "apply": bool(self.rng.random() < self.p),
            "style": self.styles[int(self.rng.integers(len(self.styles)))],
            "wear": self.wear[int(self.rng.integers(len(self.wear)))],
            "seed": int(self.rng.integers(2**63)),
        }

    def apply(
        self, image: np.ndarray, *, style: str, wear: str, seed: int, **_: Any
    ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Mask ``image`` with fixed parameters: (masked image, alpha, per-face records)."""
        result = mask_image(
            image, style, wear=wear, faces=self.faces, renderer=self.renderer,
            analyser=self.analyser, seed=seed, vary=self.vary,
        )
        return result.image, result.alpha, result.faces

    def __call__(self, *, image: np.ndarray, **kwargs: Any) -> dict[str, Any]:
        params = self.get_params()
        if not params["apply"]:
            alpha = np.zeros(image.shape[:2], np.uint8)
            return {**kwargs, "image": image, "mask_alpha": alpha, "mask_params": None}
        masked, alpha, faces = self.apply(image, **params)
        return {**kwargs, "image": masked, "mask_alpha": alpha,
                "mask_params": {**params, "faces": faces}}
