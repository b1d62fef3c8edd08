"""Fine-tuning a CNN (a timm backbone by default) on face crops, for users with more compute.

One network per target: a classification head with cross-entropy for sex, race and age
groups, a single output with L1 loss for age. CUDA is used when present, else the CPU.
Training on the 8,000-image sample takes hours on 2 CPU cores; the tests only run a smoke
run on a few images.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from maskface.attributes.targets import get_target
from maskface.imageio import read_image

# ImageNet statistics: what timm's pretrained backbones expect.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def default_device() -> torch.device:
    """CUDA when available, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def timm_backbone(name: str = "resnet18", pretrained: bool = True) -> Callable[[int], nn.Module]:
    """A factory ``outputs -> model`` building timm's ``name`` with a fresh head."""

    def build(outputs: int) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=pretrained, num_classes=outputs)

    return build


def load_batch(paths: Sequence[str | os.PathLike[str]], size: int) -> torch.Tensor:
    """Images resized to ``size`` x ``size`` and normalised, as an (N, 3, size, size) tensor."""
    import cv2

    images = [cv2.resize(read_image(p), (size, size), interpolation=cv2.INTER_AREA)
              for p in paths]
    x = (np.stack(images).astype(np.float32) / 255 - _MEAN) / _STD
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


@dataclass
class FineTuneConfig:
    """Training settings; ``backbone`` maps the number of outputs to a network."""

    backbone: Callable[[int], nn.Module] = field(default_factory=timm_backbone)
    image_size: int = 160
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass
class FineTuned:
    """A trained network for one target, with per-epoch training losses."""

    target: str
    model: nn.Module
    config: FineTuneConfig
    losses: list[float]
    seconds: float

    @torch.no_grad()
    def predict(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Class indices, or ages in years, for image files."""
        device = next(self.model.parameters()).device
        self.model.eval()
        out = []
        for start in range(0, len(paths), self.config.batch_size):
            x = load_batch(paths[start : start + self.config.batch_size], self.config.image_size)
            out.append(self.model(x.to(device)).cpu())
        logits = torch.cat(out)
        if get_target(self.target).is_classification:
            return logits.argmax(dim=1).numpy().astype(np.int64)
        return logits[:, 0].clamp(min=0).numpy().astype(np.float64)


def finetune(
    paths: Sequence[str | os.PathLike[str]],
    labels: np.ndarray,
    target: str,
    config: FineTuneConfig | None = None,
    device: torch.device | None = None,
) -> FineTuned:
    """Train ``config.backbone`` on image files and their ``target`` labels."""
    config = config or FineTuneConfig()
    spec = get_target(target)
    device = device or default_device()
    torch.manual_seed(config.seed)
    model = config.backbone(len(spec.classes) if spec.is_classification else 1).to(device)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if spec.is_classification else nn.L1Loss()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long if spec.is_classification
                        else torch.float32)
    rng = np.random.default_rng(config.seed)
    losses, start = [], time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        total = 0.0
        for batch in np.array_split(rng.permutation(len(paths)),
                                    max(1, int(np.ceil(len(paths) / config.batch_size)))):
            x = load_batch([paths[i] for i in batch], config.image_size).to(device)
            if rng.random() < 0.5:  # mirrored faces keep every attribute
                x = x.flip(3)
            out = model(x)
            loss = loss_fn(out if spec.is_classification else out[:, 0], y[batch].to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss) * len(batch)
        losses.append(total / len(paths))
    return FineTuned(target, model, config, losses, time.perf_counter() - start)
