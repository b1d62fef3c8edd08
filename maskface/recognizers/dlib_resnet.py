"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The weights are read from dlib's own file by :mod:`maskface.recognizers.dlib_format` (no dlib
needed), checked against the architecture of dlib's ``dnn_face_recognition_ex.cpp`` and cached
as safetensors, so later loads skip the parse. The module reproduces dlib's arithmetic,
including how ``add_prev`` adds tensors of different shapes, and stays trainable.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskface.atomic import atomic_writer
from maskface.cache import cache_dir
from maskface.errors import InvalidInputError
from maskface.recognizers.base import Recognizer
from maskface.recognizers.dlib_format import MARKER, DlibFormatError, DlibNet, load_dlib_net

CHIP_SIZE = 150
EMBEDDING_DIM = 128
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
# The layer sequence dlib writes for this network, one letter per record (see _TOKENS):
# stem, then plain and downsampling residual blocks, then global pooling and the embedding.
_TOKENS = {
    "con_4": "C",
    "affine_": "A",
    "relu_": "R",
    "max_pool_2": "M",
    "avg_pool_2": "P",
    "add_prev_": "+",
    "fc_2": "F",
    MARKER: "t",
}
_PLAIN, _DOWN = "tCARCA+R", "tCARCAttP+R"
_CACHE_FORMAT = "dlib-resnet-v2"


class Affine(nn.Module):
    """dlib's ``affine`` layer: a learnable per-channel scale and shift (a frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def dlib_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` as dlib's ``add_prev`` does it: the result has the larger size in every
    dimension and the missing elements of either tensor count as zero (padding at the end)."""
    shape = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = (s - d for s, d in zip(shape, t.shape[1:], strict=True))
        return F.pad(t, (0, w, 0, h, 0, c)) if c or h or w else t

    return grow(a) + grow(b)


class Normalize(nn.Module):
    """dlib's input scaling: ``(pixel - channel mean) / 256``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / 256.0


def _fold(conv: nn.Conv2d, affine: Affine) -> None:
    with torch.no_grad():
        conv.weight.mul_(affine.weight[:, None, None, None])
        conv.bias.mul_(affine.weight).add_(affine.bias)


class ResBlock(nn.Module):
    """conv3x3 -> affine -> relu -> conv3x3 -> affine, plus the shortcut, then relu.

    A downsampling block strides its first convolution by 2 without padding (as dlib does
    for stride 2) and average-pools the shortcut 2x2/2.
    """

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride, pad = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, pad)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.affine2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)), inplace=True)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(dlib_add(y, shortcut), inplace=True)

    def fold_affines(self) -> None:
        _fold(self.conv1, self.affine1)
        _fold(self.conv2, self.affine2)
        self.affine1 = self.affine2 = nn.Identity()


class DlibResNet(nn.Module):
    """The 29-convolution ResNet: (N, 3, 150, 150) RGB in 0..255 -> (N, 128) descriptors.

    Outputs are dlib's raw descriptors (not normalised), so they compare directly with
    ``dlib.face_recognition_model_v1.compute_face_descriptor``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine = Affine(32)
        blocks, cin = [], 32
        for cout, count, down in STAGES:
            for i in range(count):
                blocks.append(ResBlock(cin, cout, down and i == 0))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, EMBEDDING_DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.affine(self.conv(self.normalize(x))), inplace=True), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    def fused(self) -> DlibResNet:
        """An inference copy with every affine and the input scaling folded into the
        convolutions before them (the stem convolution has no padding, so folding the mean
        subtraction is exact up to float rounding). About 1.5x faster on CPU; not for
        training, since the folded scales are no longer separate parameters."""
        model = copy.deepcopy(self).eval()
        with torch.no_grad():
            conv, mean = model.conv, model.normalize.mean
            shift = (conv.weight * mean).sum(dim=(1, 2, 3))
            conv.weight.div_(256.0)
            conv.bias.sub_(shift / 256.0)
        _fold(conv, model.affine)
        model.normalize = model.affine = nn.Identity()
        for block in model.blocks:
            block.fold_affines()
        return model


def stages(net: nn.Module) -> list[list[nn.Module]]:
    """The stem and the five residual stages of a dlib ResNet (or a module holding its
    ``conv``, ``affine`` and ``blocks``), input first: what ``freeze`` options count."""
    out: list[list[nn.Module]] = [[net.conv, net.affine]]
    start = 0
    for _, count, _ in STAGES:
        out.append(list(net.blocks[start : start + count]))
        start += count
    return out


def _check_architecture(net: DlibNet) -> None:
    tokens = "".join(_TOKENS[layer.kind] for layer in net.layers)
    expected = (
        "CARM"
        + "".join((_DOWN if down and i == 0 else _PLAIN) for _, n, down in STAGES for i in range(n))
        + "PF"
    )
    if tokens != expected:
        raise DlibFormatError("the file's layers are not dlib's face-recognition ResNet")
    if (net.input.settings["nr"], net.input.settings["nc"]) != (CHIP_SIZE, CHIP_SIZE):
        raise DlibFormatError("the network's input is not 150x150")


def state_dict_from_dlib(net: DlibNet) -> dict[str, torch.Tensor]:
    """The :class:`DlibResNet` state dict holding the weights of a parsed dlib file."""
    _check_architecture(net)
    convs = [layer for layer in net.layers if layer.kind == "con_4"]
    affines = [layer for layer in net.layers if layer.kind == "affine_"]
    fc = next(layer for layer in net.layers if layer.kind == "fc_2")
    blocks = [f"blocks.{b}." for b in range(len(convs) // 2)]
    state: dict[str, np.ndarray] = {}
    conv_names = ["conv"] + [f"{b}conv{j}" for b in blocks for j in (1, 2)]
    for name, layer in zip(conv_names, convs, strict=True):
        state[f"{name}.weight"] = layer.arrays["weight"]
        state[f"{name}.bias"] = layer.arrays["bias"]
    affine_names = ["affine"] + [f"{b}affine{j}" for b in blocks for j in (1, 2)]
    for name, layer in zip(affine_names, affines, strict=True):
        state[f"{name}.weight"] = layer.arrays["gamma"]
        state[f"{name}.bias"] = layer.arrays["beta"]
    state["fc.weight"] = fc.arrays["weight"].T  # dlib stores [in, out]
    s = net.input.settings
    mean = np.array([s["avg_red"], s["avg_green"], s["avg_blue"]])
    state["normalize.mean"] = mean.reshape(1, 3, 1, 1)
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in state.items()}


def default_weights_path() -> Path:
    """dlib's ``.dat`` file as installed by ``face_recognition_models``."""
    from maskface.geometry.dlib_backend import dlib_model_path

    return Path(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))


def _cache_path(dat: Path) -> Path:
    st = dat.stat()
    # Size and mtime in the name: a replaced .dat file gets a fresh conversion.
    return cache_dir() / f"{dat.stem}-{st.st_size}-{st.st_mtime_ns}.safetensors"


def load_state_dict(dat: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """Weights for :class:`DlibResNet`: from the safetensors cache, else parsed and cached."""
    from safetensors import safe_open
    from safetensors.torch import save

    dat = Path(dat) if dat is not None else default_weights_path()
    cached = _cache_path(dat)
    if cached.is_file():
        with safe_open(cached, framework="pt") as f:
            if (f.metadata() or {}).get("format") == _CACHE_FORMAT:
                return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    state = state_dict_from_dlib(load_dlib_net(dat))
    with atomic_writer(cached) as f:
        f.write(save(state, metadata={"format": _CACHE_FORMAT, "source": dat.name}))
    return state


def dlib_resnet(dat: str | os.PathLike[str] | None = None) -> DlibResNet:
    """A :class:`DlibResNet` in eval mode with dlib's pretrained weights."""
    model = DlibResNet()
    model.load_state_dict(load_state_dict(dat))
    return model.eval()


def load_weights(path: str | os.PathLike[str]) -> DlibResNet:
    """A :class:`DlibResNet` in eval mode with weights from a safetensors state dict (fp16 or
    fp32), such as the one ``maskface train`` writes."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from maskface.recognizers.base import ModelLoadError

    model = DlibResNet()
    try:
        state = load_file(str(path))
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except (OSError, SafetensorError, RuntimeError) as e:
        raise ModelLoadError(f"{path} does not hold dlib-resnet weights: {e}") from None
    return model.eval()


@cache
def _shared_model(device: str, weights: str | None = None) -> DlibResNet:
    model = dlib_resnet() if weights is None else load_weights(weights)
    return model.fused().to(device, memory_format=torch.channels_last)


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class DlibResNetRecognizer(Recognizer):
    """dlib's ResNet run in PyTorch, batched; CUDA when present."""

    name = "dlib-resnet"
    chip_size = CHIP_SIZE
    dim = EMBEDDING_DIM

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = 24,
        flip: bool = False,
        num_threads: int | None = None,
        weights: str | os.PathLike[str] | None = None,
        name: str | None = None,
        alignment: str | None = None,
    ) -> None:
        """``num_threads`` sets torch's (process-wide) CPU thread count when given.
        ``weights``: a safetensors state dict of this architecture (a fine-tuned model)
        instead of dlib's; ``name`` then names it (in reports and cache keys).
        ``alignment``: ``dlib150`` or ``dlib150-upper`` (see
        :mod:`~maskface.recognizers.templates`), default the one the weights file records."""
        if alignment is not None and alignment not in ("dlib150", "dlib150-upper"):
            raise InvalidInputError(f"{name or self.name} takes dlib's 150-pixel chips: "
                                    f"alignment dlib150 or dlib150-upper, not {alignment!r}")
        super().__init__(flip=flip, batch_size=batch_size)
        self.device = torch.device(device or _default_device())
        if weights is not None:
            from maskface.recognizers.model_common import (
                file_alignment,
                file_fingerprint,
                model_file,
            )

            path = model_file(weights)
            self.name = name or f"dlib-resnet:{path.stem}"
            self.cache_id = file_fingerprint(path)
            # A fine-tuned model is fed chips cut the way it was trained on.
            self.alignment = file_alignment(path) or "dlib150"
            weights = str(path.resolve())
        if alignment is not None:
            self.alignment = alignment
        self.model = _shared_model(str(self.device), weights)
        if num_threads is not None:
            torch.set_num_threads(num_threads)

    @torch.inference_mode()
    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """dlib's raw (unnormalised) descriptors for (N, 150, 150, 3) uint8 RGB chips."""
        out = []
        for start in range(0, len(chips), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(chips[start : start + self.batch_size]))
            # NHWC memory seen as NCHW is channels_last, the layout oneDNN convolves fastest.
            x = batch.to(self.device).float().permute(0, 3, 1, 2)
            out.append(self.model(x).cpu())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).numpy()


def export_onnx(path: str | os.PathLike[str], model: DlibResNet | None = None,
                alignment: str = "dlib150") -> Path:
    """Write the model as ONNX (input ``chips``: N x 3 x 150 x 150 float RGB 0..255, output
    ``descriptors``: N x 128, dynamic batch), atomically, recording the alignment and input
    scaling for :class:`~maskface.recognizers.onnx_model.OnnxRecognizer`. Uses torch's
    TorchScript exporter, which needs the ``onnx`` package (not onnxscript) and works
    offline."""
    import io
    import warnings

    model = (model or dlib_resnet()).cpu().eval()
    buf = io.BytesIO()
    dummy = torch.zeros(1, 3, CHIP_SIZE, CHIP_SIZE)
    with warnings.catch_warnings():
        # dlib_add's padding depends only on the spatial size, fixed at 150x150 by the
        # input layer, so the tracer may freeze it as a constant.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (dummy,),
            buf,
            input_names=["chips"],
            output_names=["descriptors"],
            dynamic_axes={"chips": {0: "n"}, "descriptors": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    import onnx

    proto = onnx.load_from_string(buf.getvalue())
    # The ONNX recognizer reads these, so the file needs no --alignment or scaling flags.
    for key, value in {"maskface.alignment": alignment, "maskface.mean": "0",
                       "maskface.std": "1"}.items():
        proto.metadata_props.add(key=key, value=value)
    path = Path(path)
    with atomic_writer(path) as f:
        f.write(proto.SerializeToString())
    return path


__all__ = [
    "Affine",
    "DlibResNet",
    "DlibResNetRecognizer",
    "Normalize",
    "cache_dir",
    "dlib_add",
    "dlib_resnet",
    "export_onnx",
    "load_state_dict",
    "load_weights",
    "stages",
    "state_dict_from_dlib",
]
