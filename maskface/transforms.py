"""A mask augmentation: ``AddMask(p=0.5)(image=img)["image"]``, alone or in ``A.Compose``.

When albumentations is installed (``pip install "maskface[augment]"``, see the README),
:class:`AddMask` is one of its image-only transforms: it runs inside ``A.Compose``, takes its
randomness from the Compose's seed, and serialises with ``A.to_dict``. Without it, the same
class works on its own with the same call convention.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from maskface.errors import InvalidInputError
from maskface.geometry.analysers import FaceAnalyser, create_analyser
from maskface.styles import list_styles
from maskface.styles.registry import STYLES
from maskface.synthesis import mask_image, wear_name

try:
    from albumentations import ImageOnlyTransform as _Base

    HAS_ALBUMENTATIONS = True
except ImportError:  # the optional extra is not installed
    HAS_ALBUMENTATIONS = False

    class _Base:  # type: ignore[no-redef]
        """What AddMask needs of albumentations' BasicTransform, for use without it."""

        def __init__(self, p: float = 0.5) -> None:
            self.p = p
            self.params: dict[str, Any] = {}
            self.set_random_seed(None)

        def set_random_seed(self, seed: int | None) -> None:
            self.seed = seed
            self.random_generator = np.random.default_rng(seed)
            self.py_random = random.Random(seed)

        def __call__(self, *, force_apply: bool = False, **kwargs: Any) -> dict[str, Any]:
            self.params = {}
            if force_apply or self.py_random.random() < self.p:
                self.params = self.get_params()
                kwargs["image"] = self.apply(kwargs["image"], **self.params)
            return kwargs


def _worker() -> tuple[int, int, int] | None:
    """(pid, worker id, worker seed) inside a PyTorch DataLoader worker, else None."""
    import sys

    if "torch" not in sys.modules:
        return None
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return None if info is None else (os.getpid(), info.id, info.seed)


class AddMask(_Base):
    """Puts a random mask on the largest face (or all faces) of an image, with probability ``p``.

    :meth:`get_params` draws the style, wear and a render seed from the transform's generator
    (seeded by ``seed``, or by ``A.Compose(seed=...)``), and :meth:`apply` paints them, so a
    sequence of calls is reproducible. In each DataLoader worker the generator is re-seeded
    from PyTorch's per-worker seed, so workers draw different masks (forked workers would
    otherwise repeat one another), and a fixed ``torch.manual_seed`` still fixes them all.
    The result also holds ``mask_alpha`` (uint8 coverage) and ``mask_params`` (what was drawn,
    or None). The face analyser is created on first use and never pickled.
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
        if not 0.0 <= p <= 1.0:
            raise InvalidInputError(f"p must be in [0, 1], got {p}")
        super().__init__(p=p)
        # Names as the registry spells them (aliases and other spellings accepted).
        self.styles = tuple(STYLES.resolve(s) for s in styles or list_styles())
        self.wear = tuple(wear_name(w) for w in wear)
        if not self.wear:
            raise InvalidInputError("wear needs at least one way of wearing the mask")
        self.vary = vary
        self.faces = faces
        self.renderer = renderer
        self.analyser = analyser
        self._analyser: FaceAnalyser | None = None if isinstance(analyser, str) else analyser
        self._owner: tuple[int, int, int] | None = None
        self._last: tuple[np.ndarray, list[dict]] | None = None
        if seed is not None:
            self.set_random_seed(seed)

    # -- albumentations protocol ------------------------------------------------------------

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        names = ("styles", "wear", "vary", "faces", "renderer")
        # A ready analyser object is not serialisable; its name is.
        return (*names, "analyser") if isinstance(self.analyser, str) else names

    def get_params(self) -> dict[str, Any]:
        """Draw this call's parameters: style, wear and a render seed."""
        self._reseed_in_worker()
        rng = self.random_generator
        return {
            "style": self.styles[int(rng.integers(len(self.styles)))],
            "wear": self.wear[int(rng.integers(len(self.wear)))],
            "seed": int(rng.integers(2**63)),
        }

    def apply(self, img: np.ndarray, style: str, wear: str, seed: int, **_: Any) -> np.ndarray:
        """Mask ``img`` with fixed parameters."""
        result = mask_image(
            img, style, wear=wear, faces=self.faces, renderer=self.renderer,
            analyser=self._face_analyser(), seed=seed, vary=self.vary,
        )
        self._last = (result.alpha, result.faces)
        return result.image

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> dict[str, Any]:
        self._last = None
        image = kwargs.get("image")
        out = super().__call__(*args, force_apply=force_apply, **kwargs)
        if self._last is None:
            shape = image.shape[:2] if isinstance(image, np.ndarray) else (0, 0)
            return {**out, "mask_alpha": np.zeros(shape, np.uint8), "mask_params": None}
        alpha, faces = self._last
        return {**out, "mask_alpha": alpha, "mask_params": {**self.params, "faces": faces}}

    # -- internals ----------------------------------------------------------------------------

    def _face_analyser(self) -> FaceAnalyser:
        if self._analyser is None:
            self._analyser = create_analyser(self.analyser)
        return self._analyser

    def _reseed_in_worker(self) -> None:
        worker = _worker()
        if worker is None or worker == self._owner:
            return
        # First call in this worker: its copy of the generator is every worker's copy, so mix
        # in the worker's id and PyTorch's seed for it.
        self._owner = worker
        _, wid, wseed = worker
        base = int(self.random_generator.integers(2**63))
        self.random_generator = np.random.default_rng([base, wid, wseed % 2**63])
        self.py_random = random.Random(int(self.random_generator.integers(2**63)))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if isinstance(self.analyser, str):
            state["_analyser"] = None  # native models are rebuilt where they are used
        state["_last"] = None
        return state
