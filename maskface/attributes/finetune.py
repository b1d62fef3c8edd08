"""Fine-tuning a face CNN per target on aligned chips, for users with more compute.

The default backbone is dlib's face-recognition ResNet (the PyTorch port in
:mod:`maskface.recognizers.dlib_resnet`, with dlib's weights from ``face_recognition_models``,
so nothing is downloaded): its trunk up to the global pool (256 features) and a fresh linear
head, fed the 150x150 chips the embedding baseline embeds (:func:`~maskface.attributes.
features.cut_chips`). A timm backbone can be used instead (:func:`timm_backbone`, optional;
pretrained weights only from a local file).

One network per target: cross-entropy for sex, race and age groups, one output with an L1
loss on standardised ages for age. The validation part picks the best epoch (and stops early);
the seed fixes the head's initialisation, dropout, the batch order and the augmentation, so a
CPU run with the same thread count is repeatable bit for bit (cuDNN may still pick
non-deterministic kernels on a GPU). CUDA is used when present, else the CPU.

    from maskface.attributes.finetune import FineTuneConfig, finetune
    run = finetune(chips[train], y[train], "race", chips[val], y[val], FineTuneConfig(epochs=4))
    predicted = run.predict(chips[test])
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from maskface.atomic import atomic_writer
from maskface.attributes.baseline import validation_score
from maskface.attributes.targets import get_target
from maskface.recognizers.dlib_resnet import (
    CHIP_SIZE,
    Affine,
    DlibResNet,
    dlib_resnet,
)

# ImageNet statistics: what timm's pretrained backbones expect unless their config says else.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_BACKBONE = "dlib-resnet"


def default_device() -> torch.device:
    """CUDA when available, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DlibTrunk(nn.Module):
    """dlib's ResNet up to its global average pool: (N, 3, 150, 150) RGB 0..255 -> (N, 256).

    The 128-d embedding layer is dropped: it is a linear map of these 256 features trained
    for identity, so a head on the pool sees everything it saw and more. The network only
    works on chips of about 150 pixels (its last stage is 2x2 there and vanishes below ~131).
    """

    dim = 256

    def __init__(self, net: DlibResNet | None = None, *, balance: bool = True) -> None:
        super().__init__()
        net = net if net is not None else dlib_resnet()
        self.normalize, self.conv, self.affine, self.blocks = (
            net.normalize, net.conv, net.affine, net.blocks)
        if balance:
            balance_scales(self)

    def stages(self) -> list[list[nn.Module]]:
        """The stem and the five residual stages, input first (what ``freeze`` counts)."""
        from maskface.recognizers.dlib_resnet import stages

        return stages(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.affine(self.conv(self.normalize(x))), inplace=True), 3, 2)
        return self.blocks(x).mean(dim=(2, 3))


def balance_scales(trunk: nn.Module) -> None:
    """Move each output channel's scale from its convolution into the affine after it.

    Exact (the network computes the same function), and needed for fine-tuning: Adam moves
    every weight by about the learning rate whatever its size, and dlib's convolution weights
    are tiny (~4e-4 in the last stage; their scale lives in the affine, ~10), so 1e-4 would
    change them by a quarter per step. Afterwards each convolution has He-initialisation
    scale and one learning rate means the same relative change in every layer.
    """
    # Every convolution of the port is registered right before the affine it feeds.
    pairs = [(conv, after) for conv, after in itertools.pairwise(trunk.modules())
             if isinstance(conv, nn.Conv2d) and isinstance(after, Affine)]
    with torch.no_grad():
        for conv, affine in pairs:
            fan_in = conv.weight[0].numel()
            std = conv.weight.flatten(1).std(dim=1)
            # A dead (all-zero) channel has no scale to move; leave it alone.
            scale = torch.where(std > 1e-8, math.sqrt(2.0 / fan_in) / std.clamp(min=1e-8),
                                torch.ones_like(std))
            conv.weight.mul_(scale[:, None, None, None])
            if conv.bias is not None:
                conv.bias.mul_(scale)
            affine.weight.div_(scale)


class _Standardize(nn.Module):
    """RGB 0..255 -> ``(x / 255 - mean) / std``, resized to ``size`` when given (timm inputs)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int | None) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)
        return (x / 255.0 - self.mean) / self.std


class AttributeNet(nn.Module):
    """A pretrained trunk (chips -> ``dim`` features) and a fresh head (layer norm, dropout,
    linear).

    Takes float RGB chips (N, 3, 150, 150) in 0..255; ``prepare`` turns them into what the
    trunk expects (dlib's trunk normalises its own input).
    """

    def __init__(self, trunk: nn.Module, dim: int, outputs: int, *, dropout: float = 0.2,
                 prepare: nn.Module | None = None) -> None:
        super().__init__()
        self.prepare = prepare if prepare is not None else nn.Identity()
        self.trunk = trunk
        # dlib's pooled features are all positive (after a ReLU) around a common ~1.2; a
        # linear head on them moves every logit together and overshoots. Layer norm centres
        # and scales each face's features without depending on the batch.
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, outputs)
        # A small head keeps the first, random gradients into the pretrained trunk small.
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.norm(self.trunk(self.prepare(x)))))


@dataclass(frozen=True)
class Backbone:
    """A named network factory: ``backbone(outputs)`` gives an :class:`AttributeNet`."""

    name: str
    build: Callable[[int], nn.Module]

    def __call__(self, outputs: int) -> nn.Module:
        return self.build(outputs)


def dlib_backbone(dat: str | os.PathLike[str] | None = None, *, pretrained: bool = True,
                  dropout: float = 0.2) -> Backbone:
    """dlib's ResNet trunk with dlib's face weights (offline) and a fresh head.

    ``dat`` is dlib's ``.dat`` file (default: from ``face_recognition_models``);
    ``pretrained=False`` gives the bare architecture (to load saved weights into).
    """

    def build(outputs: int) -> nn.Module:
        trunk = DlibTrunk(dlib_resnet(dat)) if pretrained else DlibTrunk(DlibResNet(),
                                                                          balance=False)
        return AttributeNet(trunk, DlibTrunk.dim, outputs, dropout=dropout)

    return Backbone(DEFAULT_BACKBONE, build)


def timm_backbone(name: str = "resnet18", pretrained: bool = False,
                  weights: str | os.PathLike[str] | None = None, *, size: int | None = None,
                  dropout: float = 0.2) -> Backbone:
    """timm's ``name`` as a trunk (needs the optional ``timm`` package) with a fresh head.

    Nothing is ever downloaded: ``pretrained=True`` needs ``weights``, a local weights file
    (e.g. the ``model.safetensors`` of ``timm/<name>`` on the Hugging Face Hub, fetched by
    you beforehand); without it the network starts from random weights. Chips are resized to
    ``size`` (default: kept at 150) and standardised with the model's mean and std.
    """
    if pretrained and weights is None:
        raise ValueError("pretrained timm weights are read only from a local file: pass "
                         "weights=PATH (maskface never downloads weights)")
    try:
        import timm  # noqa: F401  (fail here, before any data is read)
    except Exception as e:  # a torchvision built for another torch fails with RuntimeError
        raise ValueError(f"timm cannot be imported ({e}): install timm with a torchvision "
                         "matching your torch") from None

    def build(outputs: int) -> nn.Module:
        import timm

        kwargs: dict[str, Any] = {"num_classes": 0}  # no classifier: pooled features out
        if pretrained:
            # A 'file' in the pretrained config makes timm load it instead of its hub/URL.
            kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
        trunk = timm.create_model(name, pretrained=pretrained, **kwargs)
        cfg = getattr(trunk, "pretrained_cfg", None) or {}
        prepare = _Standardize(cfg.get("mean", _IMAGENET_MEAN), cfg.get("std", _IMAGENET_STD),
                               size)
        return AttributeNet(trunk, trunk.num_features, outputs, dropout=dropout,
                            prepare=prepare)

    return Backbone(f"timm:{name}", build)


def backbone_from_name(name: str, **kwargs: Any) -> Backbone:
    """``dlib-resnet`` or ``timm:<model>`` (see :func:`dlib_backbone`, :func:`timm_backbone`)."""
    if name == DEFAULT_BACKBONE:
        return dlib_backbone(**kwargs)
    if name.startswith("timm:") and len(name) > 5:
        return timm_backbone(name[5:], **kwargs)
    raise ValueError(f"unknown backbone {name!r}; use {DEFAULT_BACKBONE} or timm:<model>")


@dataclass
class FineTuneConfig:
    """Training settings.

    ``lr`` is the head's learning rate and ``trunk_lr`` the pretrained trunk's (lower, so
    the face features are adjusted rather than overwritten). ``freeze`` keeps that many
    leading trunk stages fixed (dlib trunk: stem + 5 stages), which also skips their
    backward pass. ``shift`` is the largest random translation in pixels; ``mirror`` flips
    half the faces (a mirrored face keeps every attribute). ``patience`` stops after that
    many epochs without a better validation score (``None``: run every epoch).
    """

    backbone: Callable[[int], nn.Module] = field(default_factory=dlib_backbone)
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    trunk_lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup: float = 0.05
    freeze: int = 0
    shift: int = 6
    mirror: bool = True
    label_smoothing: float = 0.0
    patience: int | None = 3
    seed: int = 0

    def settings(self) -> dict[str, Any]:
        """Everything but the backbone, JSON-ready, plus the backbone's name."""
        out = {k: v for k, v in asdict(self).items() if k != "backbone"}
        return {"backbone": getattr(self.backbone, "name", "custom"), **out}


def to_input(chips: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 chips (N, H, W, 3) as a float (N, 3, H, W) tensor in 0..255 on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(chips)).to(device).permute(0, 3, 1, 2).float()


def augment(chips: np.ndarray, rng: np.random.Generator, *, shift: int = 0,
            mirror: bool = True) -> np.ndarray:
    """Randomly shifted (black borders, as dlib's chips have) and mirrored copies of chips."""
    n, h, w = chips.shape[:3]
    out = chips
    if shift > 0:
        padded = np.pad(chips, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
        offsets = rng.integers(0, 2 * shift + 1, size=(n, 2))
        out = np.stack([padded[i, dy : dy + h, dx : dx + w]
                        for i, (dy, dx) in enumerate(offsets)])
    if mirror:
        flip = rng.random(n) < 0.5
        out = out.copy() if out is chips else out
        out[flip] = out[flip, :, ::-1]
    return out


@torch.inference_mode()
def network_outputs(model: nn.Module, chips: np.ndarray, batch_size: int = 64,
                    device: torch.device | None = None) -> torch.Tensor:
    """The network's raw outputs (N, outputs) on the CPU, in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model(to_input(chips[i : i + batch_size], device)).float().cpu()
           for i in range(0, len(chips), batch_size)]
    return torch.cat(out) if out else torch.zeros((0, 1))


@dataclass
class FineTuned:
    """A trained network for one target: its epochs, the one kept, and the age scaling."""

    target: str
    model: nn.Module
    config: FineTuneConfig
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    age_mean: float = 0.0
    age_std: float = 1.0

    @property
    def losses(self) -> list[float]:
        """Mean training loss per epoch."""
        return [h["train_loss"] for h in self.history]

    def decode(self, outputs: torch.Tensor) -> np.ndarray:
        """Class indices (int), or ages in years (float, >= 0), from network outputs."""
        if get_target(self.target).is_classification:
            return outputs.argmax(dim=1).numpy().astype(np.int64)
        ages = outputs[:, 0].double().numpy() * self.age_std + self.age_mean
        return np.clip(ages, 0, None)

    def predict(self, chips: np.ndarray) -> np.ndarray:
        """Class indices, or ages in years, for uint8 chips (N, 150, 150, 3)."""
        return self.decode(network_outputs(self.model, chips, self.config.batch_size * 2))


def _param_groups(model: nn.Module, config: FineTuneConfig) -> list[dict[str, Any]]:
    """Head vs trunk learning rates; no weight decay on biases and per-channel scales."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (not name.startswith("trunk."), param.ndim > 1)
        groups.setdefault(key, []).append(param)
    return [{"params": params, "lr": config.lr if head else config.trunk_lr,
             "weight_decay": config.weight_decay if decay else 0.0}
            for (head, decay), params in sorted(groups.items())]


def _freeze(model: nn.Module, stages: int) -> None:
    if stages <= 0:
        return
    trunk = getattr(model, "trunk", None)
    if not hasattr(trunk, "stages"):
        raise ValueError("freeze needs a trunk with stages() (the dlib backbone has them)")
    for modules in trunk.stages()[:stages]:
        for module in modules:
            module.requires_grad_(False)


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up (the fresh head settles before the trunk moves much), then cosine."""
    ramp = max(1, round(warmup * total))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        return 0.5 * (1 + math.cos(math.pi * (step - ramp) / max(1, total - ramp)))

    return factor


def finetune(
    chips: np.ndarray,
    labels: np.ndarray,
    target: str,
    val_chips: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    config: FineTuneConfig | None = None,
    device: torch.device | None = None,
    *,
    progress: bool = False,
) -> FineTuned:
    """Train ``config.backbone`` on uint8 chips (N, 150, 150, 3) and their ``target`` labels.

    With validation chips, the weights of the epoch with the best validation score (accuracy,
    or minus the MAE for age) are kept and training stops after ``config.patience`` epochs
    without improvement; without them, the last epoch is kept.
    """
    config = config or FineTuneConfig()
    spec = get_target(target)
    device = device or default_device()
    labels = np.asarray(labels)
    if len(chips) != len(labels) or not len(chips):
        raise ValueError(f"need as many labels as chips (> 0), got {len(chips)}/{len(labels)}")
    has_val = val_chips is not None and val_labels is not None and len(val_chips) > 0
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    # Channels-last: the layout oneDNN convolves fastest (training ~25% faster on CPU), and
    # what to_input's NHWC chips already are.
    model = config.backbone(len(spec.classes) if spec.is_classification else 1).to(
        device, memory_format=torch.channels_last)
    _freeze(model, config.freeze)
    age_mean, age_std = 0.0, 1.0
    if spec.is_classification:
        loss_fn: nn.Module = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        y = torch.as_tensor(labels, dtype=torch.long)
    else:
        # Standardised ages: a fresh head starts at the mean age, not at 0 years.
        age_mean, age_std = float(labels.mean()), float(labels.std() or 1.0)
        loss_fn = nn.L1Loss()
        y = torch.as_tensor((labels - age_mean) / age_std, dtype=torch.float32)
    optimiser = torch.optim.AdamW(_param_groups(model, config))
    steps_per_epoch = math.ceil(len(chips) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, _schedule(config.epochs * steps_per_epoch, config.warmup))
    run = FineTuned(target, model, config, [], 0, 0.0, age_mean, age_std)
    best_score, best_state, stale = -math.inf, None, 0
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(len(chips))
        batches = [order[i : i + config.batch_size]
                   for i in range(0, len(order), config.batch_size)]
        if progress:
            batches = tqdm(batches, desc=f"{target} epoch {epoch}/{config.epochs}",
                           unit="batch", leave=True)
        total, seen = 0.0, 0
        for batch in batches:
            x = to_input(augment(chips[batch], rng, shift=config.shift, mirror=config.mirror),
                         device)
            out = model(x)
            loss = loss_fn(out if spec.is_classification else out[:, 0], y[batch].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total, seen = total + loss.item() * len(batch), seen + len(batch)
            if progress:
                batches.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
        entry = {"epoch": epoch, "train_loss": total / seen,
                 "train_seconds": round(time.perf_counter() - t0, 2)}
        if has_val:
            t1 = time.perf_counter()
            score = validation_score(target, np.asarray(val_labels), run.predict(val_chips))
            entry.update(val_score=score, val_seconds=round(time.perf_counter() - t1, 2))
            if score > best_score:
                best_score, run.best_epoch, stale = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        else:
            run.best_epoch = epoch
        run.history.append(entry)
        if progress:
            tqdm.write(f"{target} epoch {epoch}: " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in entry.items() if k != "epoch"))
        if has_val and config.patience is not None and stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    run.seconds = time.perf_counter() - start
    return run


def save_finetuned(run: FineTuned, path: str | os.PathLike[str],
                   meta: dict[str, Any] | None = None) -> Path:
    """Write the trained weights and what they were trained with (``torch.save``).

    Only plain data is stored, so :func:`load_finetuned` reads it with ``weights_only``.
    """
    path = Path(path)
    info = {"target": run.target, "config": run.config.settings(), "history": run.history,
            "best_epoch": run.best_epoch, "seconds": run.seconds, "age_mean": run.age_mean,
            "age_std": run.age_std, **(meta or {})}
    with atomic_writer(path) as fh:
        torch.save({"state_dict": run.model.state_dict(), "meta": info}, fh)
    return path


def load_finetuned(path: str | os.PathLike[str],
                   device: torch.device | None = None) -> tuple[FineTuned, dict[str, Any]]:
    """Read a network written by :func:`save_finetuned` (its backbone must be buildable)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    meta = data["meta"]
    settings = dict(meta["config"])
    name = settings.pop("backbone")
    backbone = (dlib_backbone(pretrained=False) if name == DEFAULT_BACKBONE
                else backbone_from_name(name))
    config = FineTuneConfig(backbone=backbone, **settings)
    spec = get_target(meta["target"])
    model = backbone(len(spec.classes) if spec.is_classification else 1)
    model.load_state_dict(data["state_dict"])
    model.to(device or default_device(), memory_format=torch.channels_last).eval()
    run = FineTuned(meta["target"], model, config, meta["history"], meta["best_epoch"],
                    meta["seconds"], meta["age_mean"], meta["age_std"])
    return run, meta


__all__ = [
    "CHIP_SIZE",
    "DEFAULT_BACKBONE",
    "AttributeNet",
    "Backbone",
    "DlibTrunk",
    "FineTuneConfig",
    "FineTuned",
    "augment",
    "backbone_from_name",
    "balance_scales",
    "default_device",
    "dlib_backbone",
    "finetune",
    "load_finetuned",
    "network_outputs",
    "save_finetuned",
    "timm_backbone",
    "to_input",
]
