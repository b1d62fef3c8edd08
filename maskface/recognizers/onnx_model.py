"""Any ONNX face-embedding model as a :class:`Recognizer`, run by onnxruntime.

The model's first input takes float chips, NCHW or NHWC (read from its shape), and its first
output is the embedding. A fixed input size must be the alignment's chip size; a fixed batch
size is filled chunk by chunk (the last chunk padded with black chips, whose rows are dropped).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from maskface.recognizers.base import ModelLoadError, Recognizer
from maskface.recognizers.model_common import (
    ARCFACE_MEAN,
    ARCFACE_STD,
    channel_values,
    choose_alignment,
    describe_scaling,
    file_fingerprint,
    model_file,
)
from maskface.recognizers.templates import check_alignment

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
           "tensor(double)": np.float64}
LAYOUTS = ("nchw", "nhwc")


def default_providers() -> list[str]:
    """CUDA then CPU when onnxruntime has CUDA, else the CPU alone."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def _static(dim: object) -> int | None:
    # onnxruntime gives symbolic dimensions as strings (or None); fixed ones as ints.
    return dim if isinstance(dim, int) and dim > 0 else None


def _layout(shape: Sequence[object], layout: str | None, path: os.PathLike | str) -> str:
    if len(shape) != 4:
        raise ModelLoadError(f"{path}: the model's input has shape {list(shape)}; a face "
                             "recognizer takes a 4-D batch of chips")
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose from {LAYOUTS}")
        return layout
    if _static(shape[1]) == 3:
        return "nchw"
    if _static(shape[3]) == 3:
        return "nhwc"
    if _static(shape[1]) is None and _static(shape[3]) is None:
        return "nchw"  # nothing fixed: the usual PyTorch export
    raise ModelLoadError(f"{path}: input shape {list(shape)} has no 3-channel axis")


class OnnxRecognizer(Recognizer):
    """An ONNX model mapping aligned chips to embeddings; CUDA when onnxruntime has it.

    Chips are scaled as ``(pixel - mean) / std`` (per channel or one number, 0..255 units;
    ArcFace's 127.5/128 by default, or what a model exported by maskface records), RGB unless
    ``bgr``. ``alignment`` defaults to the one
    matching a fixed input size (112: ``arcface112``, 160: ``facenet160``, 150: ``dlib150``),
    else ``arcface112``. ``layout`` (``"nchw"``/``"nhwc"``) overrides what the input shape
    says. ``providers`` are onnxruntime's execution providers, in order of preference.
    """

    name = "onnx"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        alignment: str | None = None,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        bgr: bool = False,
        layout: str | None = None,
        providers: Sequence[str] | None = None,
        batch_size: int = 64,
        flip: bool = False,
    ) -> None:
        import onnxruntime as ort

        super().__init__(flip=flip, batch_size=batch_size)
        if alignment is not None:
            check_alignment(alignment)
        self.path = model_file(path)
        try:
            self.session = ort.InferenceSession(
                str(self.path), providers=list(providers or default_providers())
            )
        except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail...)
            first = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            raise ModelLoadError(f"{self.path} is not a usable ONNX model: {first}") from None
        # Models maskface exports say how they want their chips (see export_onnx).
        meta = self.session.get_modelmeta().custom_metadata_map
        alignment = alignment or meta.get("maskface.alignment")
        mean = mean if mean is not None else float(meta.get("maskface.mean", ARCFACE_MEAN))
        std = std if std is not None else float(meta.get("maskface.std", ARCFACE_STD))
        if alignment is not None:
            check_alignment(alignment)
        inp = self.session.get_inputs()[0]
        self._input = inp.name
        self._output = self.session.get_outputs()[0].name
        if inp.type not in _DTYPES:
            raise ModelLoadError(f"{self.path}: input type {inp.type} is not a float tensor")
        self._dtype = _DTYPES[inp.type]
        shape = list(inp.shape)
        self.layout = _layout(shape, layout, self.path)
        h, w = (shape[2], shape[3]) if self.layout == "nchw" else (shape[1], shape[2])
        h, w = _static(h), _static(w)
        if h is not None and w is not None and h != w:
            raise ModelLoadError(f"{self.path}: the model takes {h}x{w} input; every "
                                 "alignment makes square chips")
        self.alignment = choose_alignment(alignment, h or w, "arcface112")
        self.chip_size = check_alignment(self.alignment)
        self.fixed_batch = _static(shape[0])
        self.mean = channel_values(mean, "mean")
        self.std = channel_values(std, "std")
        self.bgr = bgr
        self.name = f"onnx:{self.path.stem}"
        self._digest: str | None = None
        try:
            probe = self.descriptors(np.zeros((1, self.chip_size, self.chip_size, 3), np.uint8))
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"{self.path} does not run on {self.chip_size}x"
                                 f"{self.chip_size} chips: {str(e).splitlines()[0][:300]}"
                                 ) from None
        self.dim = int(probe.shape[1])

    @property
    def cache_id(self) -> str:  # type: ignore[override]
        """Digest of the model file and the input scaling."""
        if self._digest is None:
            self._digest = file_fingerprint(self.path)
        return f"{self._digest}-{describe_scaling(self.mean, self.std, self.bgr)}"

    def _run(self, chips: np.ndarray) -> np.ndarray:
        x = chips.astype(np.float32)
        if self.bgr:
            x = x[..., ::-1]
        x = (x - self.mean) / self.std
        if self.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x, dtype=self._dtype)
        (out,) = self.session.run([self._output], {self._input: x})
        out = np.asarray(out, dtype=np.float32)
        if out.ndim > 2 and all(s == 1 for s in out.shape[2:]):
            out = out.reshape(len(out), -1)
        if out.ndim != 2 or out.shape[0] != len(chips):
            raise ModelLoadError(f"{self.path} returns shape {out.shape} for {len(chips)} "
                                 "chip(s); a recognizer needs (N, dim)")
        return out

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """The model's raw outputs (N, dim) for (N, chip_size, chip_size, 3) uint8 chips."""
        step = self.fixed_batch or self.batch_size
        out = []
        for start in range(0, len(chips), step):
            batch = chips[start : start + step]
            n = len(batch)
            if self.fixed_batch and n < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - n, *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad])
            out.append(self._run(batch)[:n])
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out)


__all__ = ["LAYOUTS", "OnnxRecognizer", "default_providers"]
