"""Shared fixtures: the embedded sample face and the real data in ../shared/data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW = SHARED / "lfw" / "lfw-deepfunneled"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Every test session (each xdist worker too) gets its own empty maskface cache, so
    tests neither read nor write the user's ``~/.cache/maskface`` nor share one SQLite file
    across processes."""
    old = os.environ.get("MASKFACE_CACHE")
    os.environ["MASKFACE_CACHE"] = str(tmp_path_factory.mktemp("maskface-cache"))
    yield
    if old is None:
        os.environ.pop("MASKFACE_CACHE", None)
    else:
        os.environ["MASKFACE_CACHE"] = old


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo: one frontal face, shipped inside an installed package."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def lfw() -> Path:
    """Root of the deep-funneled LFW images; skips when ../shared/data is absent."""
    if not LFW.is_dir():
        pytest.skip(f"real LFW images not found at {LFW} (../shared/data is absent)")
    return LFW


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def modules_loaded_by(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys; {statement}; print(*sorted(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1])
    return out.stdout.split()


# Training tests: four LFW View 2 folds 1-5 people with three photos each, plus two more as
# validation people.
TRAINING_PEOPLE = ["Abdullah_Gul", "Abel_Pacheco", "Adrien_Brody", "Al_Sharpton",
                   "Alan_Greenspan", "Ai_Sugiyama"]


@pytest.fixture(scope="session")
def chip_store(lfw, tmp_path_factory):
    """A tiny training chip store of :data:`TRAINING_PEOPLE`: each photo bare and in 2 masks."""
    from maskface.training.data import ChipSettings, Source, prepare_store

    sources = []
    for k, person in enumerate(TRAINING_PEOPLE):
        files = sorted((lfw / person).glob("*.jpg"))[:3]
        sources += [Source(str(f), person, "val" if k >= 4 else "train") for f in files]
    return prepare_store(sources, tmp_path_factory.mktemp("chips"), ChipSettings(variants=2),
                         workers=1)


def train_config(**kw):
    """A training configuration of a few seconds (two epochs of two steps)."""
    from maskface.training import TrainConfig

    base = dict(losses={"distill": 1.0, "arcface": 0.1}, epochs=2, batch_size=8,
                steps_per_epoch=2, val_pairs=20, seed=3)
    return TrainConfig(**{**base, **kw})


def repo_path() -> str:
    """PYTHONPATH for a subprocess that must run the code under test, not an installed copy."""
    return os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])


def read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))
