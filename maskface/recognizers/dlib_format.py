"""Read dlib's serialized DNN files (``.dat``) in pure numpy, without dlib.

dlib writes a network as nested layer wrappers. The loss layer comes first (its version, its
record, then the rest); every other wrapper writes its version, then its whole sub-network,
then its own record. Reading therefore sees all wrapper versions first (outermost first), and
then the layer records from the input upwards. Tag and skip wrappers have no record of their
own, so the reader reports them as ``"tag/skip"`` markers in their place in the sequence.

Only the records dlib's face-recognition ResNet uses are understood; anything else raises
:class:`DlibFormatError` rather than being guessed at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskface.errors import MaskfaceError

# Versions dlib writes for its wrappers (dnn/core.h): add_layer 2, input-level add_layer 3,
# add_tag_layer/add_skip_layer 1, add_loss_layer 1.
_LAYER_VERSION = 2
_INPUT_LAYER_VERSION = 3
_MARKER_VERSION = 1
_LOSS_VERSION = 1
_TENSOR_VERSION = 2
_ALIAS_VERSION = 1
# dlib's float_details marks non-finite values with these exponents (serialize.h).
_SPECIAL_EXPONENTS = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
MARKER = "tag/skip"


class DlibFormatError(MaskfaceError):
    """The file is not a dlib network this reader understands."""


@dataclass
class Layer:
    """One layer record: dlib's record name, its scalar settings and its parameter arrays."""

    kind: str
    settings: dict[str, float | int | bool] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed network: the loss record and the layers from the input upwards."""

    loss: Layer
    input: Layer
    layers: list[Layer]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DlibFormatError(f"file ends inside a value at byte {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def bool(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {char!r} at {self.pos - 1}")
        return char == b"1"

    def str(self) -> str:
        return self._take(self.int()).decode("ascii")

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent in _SPECIAL_EXPONENTS:
            return float(_SPECIAL_EXPONENTS[exponent])
        return float(np.ldexp(float(mantissa), exponent))

    def expect(self, value: int, what: str) -> None:
        got = self.int()
        if got != value:
            raise DlibFormatError(f"{what}: expected version {value}, got {got}")

    def tensor(self) -> np.ndarray:
        self.expect(_TENSOR_VERSION, "tensor")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape)

    def alias(self) -> tuple[int, ...]:
        self.expect(_ALIAS_VERSION, "alias_tensor")
        return tuple(self.int() for _ in range(4))


def _ints(r: _Reader, layer: Layer, *names: str) -> None:
    for name in names:
        layer.settings[name] = r.int()


def _floats(r: _Reader, layer: Layer, *names: str) -> None:
    for name in names:
        layer.settings[name] = r.float()


def _con(r: _Reader, layer: Layer) -> None:
    params = r.tensor().ravel()
    _ints(r, layer, "num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    filters, bias = r.alias(), r.alias()
    n_filters = int(np.prod(filters))
    if n_filters + int(np.prod(bias)) != params.size:
        raise DlibFormatError("con_4: parameter count does not match its filter shape")
    layer.arrays["weight"] = params[:n_filters].reshape(filters)
    layer.arrays["bias"] = params[n_filters:]
    _floats(r, layer, "lr_mult", "decay_mult", "bias_lr_mult", "bias_decay_mult")


def _affine(r: _Reader, layer: Layer) -> None:
    params = r.tensor().ravel()
    gamma, beta = r.alias(), r.alias()
    k = int(np.prod(gamma))
    if k + int(np.prod(beta)) != params.size:
        raise DlibFormatError("affine_: parameter count does not match gamma and beta")
    layer.arrays["gamma"], layer.arrays["beta"] = params[:k], params[k:]
    _ints(r, layer, "mode")


def _pool(r: _Reader, layer: Layer) -> None:
    _ints(r, layer, "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")


def _fc(r: _Reader, layer: Layer) -> None:
    _ints(r, layer, "num_outputs", "num_inputs")
    params = r.tensor().ravel()
    weights, bias = r.alias(), r.alias()
    _ints(r, layer, "bias_mode")
    n_in, n_out = int(layer.settings["num_inputs"]), int(layer.settings["num_outputs"])
    if layer.settings["bias_mode"] != 1 or params.size != n_in * n_out:  # 1 = FC_NO_BIAS
        raise DlibFormatError("fc_2: only the no-bias layer of the face model is supported")
    del weights, bias  # their shapes restate num_inputs/num_outputs
    layer.arrays["weight"] = params.reshape(n_in, n_out)
    _floats(r, layer, "lr_mult", "decay_mult", "bias_lr_mult", "bias_decay_mult")


_PARSERS = {
    "con_4": _con,
    "affine_": _affine,
    "max_pool_2": _pool,
    "avg_pool_2": _pool,
    "fc_2": _fc,
    "relu_": lambda r, layer: None,
    "add_prev_": lambda r, layer: None,
}


def _record(r: _Reader) -> Layer:
    kind = r.str()
    if kind not in _PARSERS:
        raise DlibFormatError(f"unsupported layer record {kind!r} at byte {r.pos}")
    layer = Layer(kind)
    _PARSERS[kind](r, layer)
    return layer


def _layer_state(r: _Reader) -> None:
    # setup-called / gradient-stale / output-disabled flags, then three training-time tensors
    # (dlib saves them empty); none of it matters for inference.
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()


def parse_dlib_net(data: bytes) -> DlibNet:
    """Parse a serialized dlib metric-loss network; every byte must be accounted for."""
    r = _Reader(data)
    r.expect(_LOSS_VERSION, "add_loss_layer")
    kind = r.str()
    if kind != "loss_metric_2":
        raise DlibFormatError(f"unsupported loss {kind!r}")
    loss = Layer(kind)
    _floats(r, loss, "margin", "dist_thresh")

    wrappers: list[int] = []  # outermost first
    while (version := r.int()) != _INPUT_LAYER_VERSION:
        if version not in (_LAYER_VERSION, _MARKER_VERSION):
            raise DlibFormatError(f"unexpected wrapper version {version} at byte {r.pos}")
        wrappers.append(version)

    kind = r.str()
    if kind != "input_rgb_image_sized":
        raise DlibFormatError(f"unsupported input layer {kind!r}")
    inp = Layer(kind)
    _floats(r, inp, "avg_red", "avg_green", "avg_blue")
    _ints(r, inp, "nr", "nc")

    layers = [_record(r)]  # the layer the input feeds, written with the input-level wrapper
    _layer_state(r)
    # The input-level wrapper also records how many tensor samples one input makes.
    if (expansion := r.int()) != 1:
        raise DlibFormatError(f"unsupported sample expansion factor {expansion}")
    for version in reversed(wrappers):
        if version == _MARKER_VERSION:
            layers.append(Layer(MARKER))
            continue
        layers.append(_record(r))
        _layer_state(r)
    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} unread bytes after the last layer")
    return DlibNet(loss, inp, layers)


def load_dlib_net(path: str | os.PathLike[str]) -> DlibNet:
    """Parse the ``.dat`` file at ``path``."""
    return parse_dlib_net(Path(path).read_bytes())
