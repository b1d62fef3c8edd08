"""What the PyTorch and ONNX recognizers share: model files, input scaling, alignment choice.

Kept free of torch and onnxruntime, so either recognizer works without the other installed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskface.recognizers.base import ModelLoadError
from maskface.recognizers.templates import ALIGNMENTS, check_alignment

# ArcFace's input scaling, which most open face models (insightface, facenet-pytorch) share.
ARCFACE_MEAN = 127.5
ARCFACE_STD = 128.0


def model_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path` if it is a readable, non-empty file, else
    :class:`ModelLoadError` saying what is wrong."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelLoadError(f"model path is not a file: {p}")
    if p.stat().st_size == 0:
        raise ModelLoadError(f"model file is empty: {p}")
    return p


def file_fingerprint(path: Path) -> str:
    """A digest of the file's bytes: the same weights under another name share a cache."""
    from maskface.evaluation.embeddings import file_digest

    return file_digest(path)


def channel_values(value: float | Sequence[float], what: str) -> np.ndarray:
    """A per-channel float32 (3,) array from one number or three."""
    arr = np.broadcast_to(np.asarray(value, dtype=np.float32).reshape(-1), (3,))
    if what == "std" and (arr == 0).any():
        raise ValueError("std must not be zero")
    return np.array(arr)


def describe_scaling(mean: np.ndarray, std: np.ndarray, bgr: bool) -> str:
    """The input scaling as a short string for cache keys."""
    fmt = ",".join
    return (f"mean{fmt(f'{v:g}' for v in mean)}-std{fmt(f'{v:g}' for v in std)}"
            f"-{'bgr' if bgr else 'rgb'}")


def file_alignment(path: str | os.PathLike[str]) -> str | None:
    """The alignment a safetensors file records (``maskface.alignment``, as ``maskface train``
    writes it), ``None`` when it records none or is another format."""
    p = Path(path)
    if p.suffix != ".safetensors":
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(p), framework="numpy") as f:
            alignment = (f.metadata() or {}).get("maskface.alignment")
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"{p} is not a readable safetensors file: {e}") from None
    if alignment is not None and alignment not in ALIGNMENTS:
        raise ModelLoadError(f"{p} asks for alignment {alignment!r}, which this maskface "
                             f"does not know ({', '.join(ALIGNMENTS)}); upgrade maskface")
    return alignment


def choose_alignment(alignment: str | None, input_size: int | None, default: str) -> str:
    """The alignment asked for, else the one whose chip size is the model's input size,
    else ``default``; :class:`ModelLoadError` when a fixed input size contradicts it."""
    if alignment is None:
        # The first alignment of each size is its default (dlib150 for 150, not its variant).
        by_size: dict[int, str] = {}
        for name, size in ALIGNMENTS.items():
            by_size.setdefault(size, name)
        alignment = by_size.get(input_size, default) if input_size else default
    size = check_alignment(alignment)
    if input_size is not None and input_size != size:
        raise ModelLoadError(
            f"the model takes {input_size}x{input_size} input but alignment {alignment!r} "
            f"makes {size}x{size} chips; choose an alignment of that size "
            f"({', '.join(f'{n}: {s}' for n, s in ALIGNMENTS.items())})"
        )
    return alignment
