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

from maskface.recognizers.base import ModelLoadError, NoFaceError, Recognizer, l2_normalize

RecognizerFactory = Callable[..., Recognizer]
_REGISTRY: dict[str, RecognizerFactory] = {}
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
        if name in _REGISTRY:
            raise ValueError(f"recognizer {name!r} is already registered")
        _REGISTRY[name] = f
        return f

    return add(factory) if factory is not None else add


def list_recognizers() -> list[str]:
    """Names of the registered recognizers, sorted."""
    return sorted(_REGISTRY)


def create_recognizer(name: str, **kwargs) -> Recognizer:
    """Build the recognizer registered as ``name``; ``kwargs`` go to its constructor."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown recognizer {name!r}; known: {list_recognizers()}") from None
    return factory(**kwargs)


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
        raise ValueError("the torch recognizer needs model= (a model file or module)")
    return TorchRecognizer(source, **kwargs)


def _onnx(path=None, model=None, **kwargs) -> Recognizer:
    """``path=`` (or ``model=``): the .onnx file (see OnnxRecognizer)."""
    from maskface.recognizers.onnx_model import OnnxRecognizer

    source = path if path is not None else model
    if source is None:
        raise ValueError("the onnx recognizer needs path= (an .onnx file)")
    return OnnxRecognizer(source, **kwargs)


register_recognizer("dlib", _dlib)
register_recognizer("dlib-resnet", _dlib_resnet)
register_recognizer("torch", _torch)
register_recognizer("onnx", _onnx)

__all__ = [
    "DEFAULT_DLIB_RECOGNIZER",
    "ModelLoadError",
    "NoFaceError",
    "Recognizer",
    "create_recognizer",
    "l2_normalize",
    "list_recognizers",
    "register_recognizer",
]
