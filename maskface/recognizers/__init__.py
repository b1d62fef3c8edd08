"""Face recognizers behind one interface and a small registry.

    from maskface.recognizers import create_recognizer
    rec = create_recognizer("dlib-resnet", flip=True)
    emb = rec.embed(images)            # (N, 128) float32, unit length
    emb = rec.embed_chips(chips)       # from aligned 150x150 chips

    rec = create_recognizer("onnx", path="model.onnx", alignment="arcface112")
    rec = create_recognizer("torch", model="weights.pth", arch="resnet50")

Recognizers are built lazily, so importing this package does not import torch, onnxruntime
or dlib.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from maskface.errors import InvalidInputError
from maskface.recognizers.base import ModelLoadError, NoFaceError, Recognizer, l2_normalize
from maskface.registry import Registry

RecognizerFactory = Callable[..., Recognizer]
RECOGNIZERS: Registry[RecognizerFactory] = Registry("recognizer")
_REGISTRY = RECOGNIZERS  # the former private name, which tests patched
# The recognizer dlib-based evaluations use: the PyTorch port matches dlib to ~7e-7 and is
# about 20x faster (benchmarks/RESULTS.md).
DEFAULT_DLIB_RECOGNIZER = "dlib-resnet"


def register_recognizer(
    name: str, factory: RecognizerFactory | None = None
) -> Callable[[RecognizerFactory], RecognizerFactory] | RecognizerFactory:
    """Register ``factory`` (any callable returning a :class:`Recognizer`) under ``name``.

    Usable directly or as a decorator; registering a taken name raises ``ValueError``.
    """

    def add(f: RecognizerFactory) -> RecognizerFactory:
        if name in RECOGNIZERS:
            raise InvalidInputError(f"recognizer {name!r} is already registered")
        return RECOGNIZERS.register(name, f)

    return add(factory) if factory is not None else add


def list_recognizers(pattern: str | None = None) -> list[str]:
    """Names of the registered recognizers, sorted (those matching ``pattern``, if given)."""
    return RECOGNIZERS.list(pattern)


def create_recognizer(name: str, **kwargs) -> Recognizer:
    """Build the recognizer registered as ``name``; ``kwargs`` go to its constructor."""
    return RECOGNIZERS.create(name, **kwargs)


def _dlib(**kwargs) -> Recognizer:
    from maskface.recognizers.dlib_native import DlibRecognizer

    return DlibRecognizer(**kwargs)


def _dlib_resnet(**kwargs) -> Recognizer:
    from maskface.recognizers.dlib_resnet import DlibResNetRecognizer

    return DlibResNetRecognizer(**kwargs)


def _torch(model=None, path=None, **kwargs) -> Recognizer:
    """``model=`` (or ``path=``): a module, model file or timm name (see TorchRecognizer)."""
    from maskface.recognizers.torch_model import TorchRecognizer

    source = model if model is not None else path
    if source is None:
        raise InvalidInputError("the torch recognizer needs model= (a model file or module)")
    return TorchRecognizer(source, **kwargs)


def _onnx(path=None, model=None, **kwargs) -> Recognizer:
    """``path=`` (or ``model=``): the .onnx file (see OnnxRecognizer)."""
    from maskface.recognizers.onnx_model import OnnxRecognizer

    source = path if path is not None else model
    if source is None:
        raise InvalidInputError("the onnx recognizer needs path= (an .onnx file)")
    return OnnxRecognizer(source, **kwargs)


def shipped_weights(name: str) -> Path:
    """The packaged weights file of a model maskface ships (see the README's model cards)."""
    return Path(__file__).resolve().parent.parent / "data" / f"{name.replace('-', '_')}.safetensors"


def _dlib_resnet_masked(**kwargs) -> Recognizer:
    """dlib's ResNet fine-tuned by maskface to keep identities under masks (same chips,
    same speed as ``dlib-resnet``)."""
    return _dlib_resnet(weights=shipped_weights("dlib-resnet-masked"),
                        name="dlib-resnet-masked", **kwargs)


def installed_models() -> dict[str, Path]:
    """Models installed by ``maskface train --name`` (name -> weights file)."""
    from maskface.cache import cache_dir

    folder = cache_dir() / "models"
    return {p.stem: p for p in sorted(folder.glob("*.safetensors"))} if folder.is_dir() else {}


def _installed(name: str, path: Path) -> RecognizerFactory:
    def factory(**kwargs) -> Recognizer:
        return _dlib_resnet(weights=path, name=name, **kwargs)

    return factory


register_recognizer("dlib", _dlib)
register_recognizer("dlib-resnet", _dlib_resnet)
if shipped_weights("dlib-resnet-masked").is_file():  # absent from a partial checkout
    register_recognizer("dlib-resnet-masked", _dlib_resnet_masked)
register_recognizer("torch", _torch)
register_recognizer("onnx", _onnx)
for _name, _path in installed_models().items():
    if _name not in RECOGNIZERS:
        register_recognizer(_name, _installed(_name, _path))

__all__ = [
    "DEFAULT_DLIB_RECOGNIZER",
    "RECOGNIZERS",
    "ModelLoadError",
    "NoFaceError",
    "Recognizer",
    "create_recognizer",
    "installed_models",
    "l2_normalize",
    "list_recognizers",
    "register_recognizer",
    "shipped_weights",
]
