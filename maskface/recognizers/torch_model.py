"""Any PyTorch face-embedding model as a :class:`Recognizer`.

The model can be an ``nn.Module``, a TorchScript file, a pickled ``nn.Module`` or a state dict
(``.pt``/``.pth``/``.safetensors``) plus its architecture: a timm model name or
``"dlib-resnet"`` (:class:`~maskface.recognizers.dlib_resnet.DlibResNet`, e.g. fine-tuned).
Nothing is ever downloaded: timm models are built with ``pretrained=False`` and get their
weights from the file only.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskface.recognizers.base import ModelLoadError, Recognizer
from maskface.recognizers.dlib_resnet import DlibResNet, _default_device
from maskface.recognizers.model_common import (
    ARCFACE_MEAN,
    ARCFACE_STD,
    channel_values,
    choose_alignment,
    describe_scaling,
    file_alignment,
    file_fingerprint,
    model_file,
)
from maskface.recognizers.templates import check_alignment

DLIB_ARCH = "dlib-resnet"
# Keys under which training scripts commonly nest the weights in a checkpoint dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net")


def _is_torchscript(path: Path) -> bool:
    # TorchScript archives hold their constants table; torch.save archives do not.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())


def _as_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
    """The tensor mapping in a checkpoint (top level or nested), ``module.`` prefixes gone."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            state = dict(obj)
            # nn.DataParallel / DistributedDataParallel save their wrapped module's keys so.
            if all(k.startswith("module.") for k in state):
                state = {k[len("module."):]: v for k, v in state.items()}
            return state
        for key in _NESTED_KEYS:
            if key in obj:
                found = _as_state_dict(obj[key])
                if found is not None:
                    return found
    return None


def _read_checkpoint(path: Path, map_location: torch.device) -> nn.Module | dict:
    """A module (TorchScript or pickled) or a state dict from a file."""
    if _is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location=map_location)
        except Exception as e:  # torch raises RuntimeError or its own C++ errors
            raise ModelLoadError(f"{path} is a damaged TorchScript file: {e}") from None
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as e:
            raise ModelLoadError(f"{path} is not a readable safetensors file: {e}") from None
    try:
        # Plain tensors first: that loader runs no code from the file.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # holds objects (a whole nn.Module, training state): needs the full unpickler
    except Exception as e:
        raise ModelLoadError(f"{path} is not a PyTorch model or checkpoint: {e}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelLoadError(f"{path} is not a PyTorch model or checkpoint: {e}") from None


def _head_keys(model: nn.Module) -> list[str]:
    head = {id(p) for p in model.get_classifier().parameters()}
    return [k for k, v in model.state_dict(keep_vars=True).items() if id(v) in head]


def build_arch(arch: str, state: Mapping[str, torch.Tensor] | None = None,
               embedding_dim: int | None = None) -> nn.Module:
    """An untrained ``arch`` (timm name or ``"dlib-resnet"``) with ``state`` loaded if given.

    A timm model's head is sized by ``embedding_dim``, else by the head weights in ``state``
    (none there: the pooled features are the embedding). Never downloads weights.
    """
    if arch == DLIB_ARCH:
        model: nn.Module = DlibResNet()
    else:
        try:
            import timm
        except Exception as e:  # a torchvision built for another torch fails with RuntimeError
            raise ModelLoadError(f"arch {arch!r} needs timm, which cannot be imported ({e}): "
                                 "pip install 'maskface[timm]' with a torchvision matching "
                                 "your torch") from None
        if not timm.is_model(arch):
            raise ModelLoadError(f"timm has no model {arch!r} (see timm.list_models())")
        if embedding_dim is not None:
            model = timm.create_model(arch, pretrained=False, num_classes=embedding_dim)
        else:
            model = timm.create_model(arch, pretrained=False)
            if state is not None:
                keys = [k for k in _head_keys(model) if k.endswith("weight")]
                model.reset_classifier(state[keys[0]].shape[0] if keys and keys[0] in state
                                       else 0)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            lines = str(e).splitlines()
            brief = " ".join(lines[:3])[:400]
            raise ModelLoadError(f"the weights do not fit {arch!r}: {brief}") from None
    return model


def _module_fingerprint(model: nn.Module) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(type(model).__qualname__.encode())
    for key, t in model.state_dict().items():
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_model(
    source: nn.Module | str | os.PathLike[str],
    arch: str | None = None,
    embedding_dim: int | None = None,
    map_location: torch.device | str = "cpu",
) -> tuple[nn.Module, str, str | None]:
    """``(model, label, file digest or None)`` from a module, a model file or a timm name.

    A bare timm name (no file by that name) builds the architecture with random weights,
    with a warning: only useful to try a pipeline. A pickled ``nn.Module`` is unpickled in
    full, which runs code from the file: load only files you trust.
    """
    if isinstance(source, nn.Module):
        return source, arch or type(source).__name__, None
    path = Path(source)
    if not path.exists() and arch is None and isinstance(source, str):
        try:
            import timm
        except Exception:  # not installed, or broken beside this torch: not a timm name then
            timm = None
        if timm is not None and timm.is_model(source):
            warnings.warn(f"{source!r} is built with random weights (nothing is downloaded); "
                          "pass a weights file as model= and the name as arch=", stacklevel=3)
            return build_arch(source, None, embedding_dim), source, None
    path = model_file(path)
    loaded = _read_checkpoint(path, torch.device(map_location))
    label = path.stem
    if isinstance(loaded, nn.Module):
        return loaded, label, file_fingerprint(path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), nn.Module):
        return loaded["model"], label, file_fingerprint(path)
    state = _as_state_dict(loaded)
    if state is None:
        raise ModelLoadError(f"{path} holds neither a model nor a state dict of tensors")
    if arch is None:
        raise ModelLoadError(f"{path} is a state dict: pass arch= (a timm model name, or "
                             f"{DLIB_ARCH!r}) to say which network it belongs to")
    return build_arch(arch, state, embedding_dim), label, file_fingerprint(path)


class TorchRecognizer(Recognizer):
    """A PyTorch model mapping aligned chips to embeddings, batched; CUDA when present.

    ``model``: an ``nn.Module``, a model file (see :func:`load_model`) or a timm name.
    ``arch`` names the network a state dict belongs to (timm name or ``"dlib-resnet"``),
    ``embedding_dim`` its head size when the file does not tell. Nothing is downloaded
    (timm's ``pretrained=False``).

    The model gets float32 NCHW RGB (or BGR with ``bgr=True``) batches scaled as
    ``(pixel - mean) / std`` (per channel or one number, in 0..255 units). ``alignment`` and
    the scaling default to dlib's (``dlib150``, 0/1) for :class:`DlibResNet`, which scales
    its input itself, and to ArcFace's (``arcface112``, 127.5/128) for anything else. The
    embedding size ``dim`` is found by running the model once. A model returning a tuple
    gives its first element.
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module | str | os.PathLike[str],
        *,
        arch: str | None = None,
        embedding_dim: int | None = None,
        alignment: str | None = None,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        bgr: bool = False,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        flip: bool = False,
    ) -> None:
        super().__init__(flip=flip, batch_size=batch_size)
        if alignment is not None:
            check_alignment(alignment)  # before any loading: a typo fails fast
        self.device = torch.device(device or _default_device())
        module, label, digest = load_model(model, arch, embedding_dim, self.device)
        own_scaling = isinstance(module, DlibResNet)
        if alignment is None and not isinstance(model, nn.Module):
            alignment = file_alignment(model)
        self.alignment = choose_alignment(alignment, None,
                                          "dlib150" if own_scaling else "arcface112")
        self.chip_size = check_alignment(self.alignment)
        self.mean = channel_values(mean if mean is not None else
                                   (0.0 if own_scaling else ARCFACE_MEAN), "mean")
        self.std = channel_values(std if std is not None else
                                  (1.0 if own_scaling else ARCFACE_STD), "std")
        self.bgr = bgr
        self.name = f"torch:{label}"
        self._digest = digest
        self._arch = arch or ""
        self.model = module.eval().to(self.device, memory_format=torch.channels_last)
        self._mean_t = torch.from_numpy(self.mean).to(self.device).view(1, 3, 1, 1)
        self._std_t = torch.from_numpy(self.std).to(self.device).view(1, 3, 1, 1)
        try:
            with torch.inference_mode():
                probe = self._forward(np.zeros((1, self.chip_size, self.chip_size, 3), np.uint8))
        except ModelLoadError:
            raise
        except Exception as e:  # whatever the model raises on an input it cannot take
            raise ModelLoadError(
                f"{self.name} does not run on {self.chip_size}x{self.chip_size} chips "
                f"(alignment {self.alignment!r}): {str(e).splitlines()[0][:300]}"
            ) from None
        self.dim = int(probe.shape[1])

    @cached_property
    def cache_id(self) -> str:  # type: ignore[override]
        """Weights digest (the file's, else the module's tensors') and input scaling."""
        digest = self._digest or _module_fingerprint(self.model)
        parts = (digest, self._arch, describe_scaling(self.mean, self.std, self.bgr))
        return "-".join(p for p in parts if p)

    def _forward(self, chips: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(chips)).to(self.device)
        # NHWC memory seen as NCHW is channels_last, the layout oneDNN convolves fastest.
        x = x.permute(0, 3, 1, 2).float()
        if self.bgr:
            x = x.flip(1)
        out = self.model((x - self._mean_t) / self._std_t)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.ndim > 2 and all(s == 1 for s in out.shape[2:]):
            out = out.flatten(1)
        if out.ndim != 2 or out.shape[0] != len(chips):
            raise ModelLoadError(f"the model returns shape {tuple(out.shape)} for "
                                 f"{len(chips)} chip(s); a recognizer needs (N, dim)")
        return out.float()

    @torch.inference_mode()
    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """The model's raw outputs (N, dim) for (N, chip_size, chip_size, 3) uint8 chips."""
        out = [self._forward(chips[i : i + self.batch_size]).cpu()
               for i in range(0, len(chips), self.batch_size)]
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).numpy()


__all__ = ["DLIB_ARCH", "TorchRecognizer", "build_arch", "load_model"]
