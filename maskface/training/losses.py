"""Loss terms for training recognizers, chosen by name and combined with weights.

    terms = parse_losses("distill=1,arcface=0.1")   # {"distill": 1.0, "arcface": 0.1}

- ``distill``: ``1 - cos`` between the student's embedding of a (masked) face and the frozen
  teacher's embedding of the same face bare. Needs no identity labels.
- ``consistency``: ``1 - cos`` between the student's embeddings of one face in two different
  masks (a share of each batch is drawn as such twins when this term is on): what varies
  with the mask is pushed out of the embedding while training, where within-face whitening
  can only shrink it linearly afterwards. Needs no identity labels.
- ``arcface``, ``cosface``, ``sphereface``: margin softmax losses over the labelled people
  (pytorch-metric-learning), each with its own learnable class centres.
- ``triplet`` (semi-hard triplets mined in the batch) and ``contrastive`` (pairs mined in
  the batch): metric losses over the labelled faces of a batch, which holds two faces of each
  person it draws (see :class:`~maskface.training.trainer.TrainConfig`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from maskface.training.data import TrainingDataError


class LossTerm(nn.Module):
    """A loss over a batch: embeddings (B, D), the teacher's (B, D), labels (B,) with -1
    where unknown."""

    needs_labels = True

    def forward(self, emb: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor
                ) -> torch.Tensor:
        known = labels >= 0
        if int(known.sum()) < 2:
            # Zero, yet attached to the graph: DDP expects every rank to produce gradients.
            return emb.sum() * 0.0 + sum(p.sum() * 0.0 for p in self.parameters())
        return self.labelled(emb[known], labels[known])

    def labelled(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Distill(LossTerm):
    """``1 - cos(student, teacher)``, averaged over the batch."""

    needs_labels = False

    def forward(self, emb, teacher, labels):
        return (1.0 - F.cosine_similarity(emb, teacher, dim=1)).mean()


class Consistency(LossTerm):
    """``1 - cos`` between the embeddings of twins, the samples of one face (twins share
    their teacher target), averaged over the twin pairs of the batch."""

    needs_labels = False

    def forward(self, emb, teacher, labels):
        i, j = torch.triu_indices(len(emb), len(emb), 1, device=emb.device)
        twin = (teacher[i] == teacher[j]).all(dim=1)
        if not bool(twin.any()):
            return emb.sum() * 0.0  # attached to the graph, as DDP expects
        return (1.0 - F.cosine_similarity(emb[i[twin]], emb[j[twin]], dim=1)).mean()


class _Metric(LossTerm):
    def __init__(self, loss: nn.Module, miner: nn.Module | None = None) -> None:
        super().__init__()
        self.loss, self.miner = loss, miner

    def labelled(self, emb, labels):
        emb = F.normalize(emb, dim=1)
        if self.miner is None:
            return self.loss(emb, labels)
        return self.loss(emb, labels, self.miner(emb, labels))


def _arcface(classes: int, dim: int) -> LossTerm:
    from pytorch_metric_learning import losses

    return _Metric(losses.ArcFaceLoss(classes, dim, margin=28.6, scale=64))


def _cosface(classes: int, dim: int) -> LossTerm:
    from pytorch_metric_learning import losses

    return _Metric(losses.CosFaceLoss(classes, dim, margin=0.35, scale=64))


def _sphereface(classes: int, dim: int) -> LossTerm:
    from pytorch_metric_learning import losses

    return _Metric(losses.SphereFaceLoss(classes, dim, margin=4, scale=1))


def _triplet(classes: int, dim: int) -> LossTerm:
    from pytorch_metric_learning import losses, miners

    return _Metric(losses.TripletMarginLoss(margin=0.1),
                   miners.TripletMarginMiner(margin=0.1, type_of_triplets="semihard"))


def _contrastive(classes: int, dim: int) -> LossTerm:
    from pytorch_metric_learning import losses, miners

    return _Metric(losses.ContrastiveLoss(pos_margin=0.0, neg_margin=0.6),
                   miners.PairMarginMiner(pos_margin=0.0, neg_margin=0.6))


LOSSES: dict[str, Callable[[int, int], LossTerm]] = {
    "distill": lambda classes, dim: Distill(),
    "consistency": lambda classes, dim: Consistency(),
    "arcface": _arcface,
    "cosface": _cosface,
    "sphereface": _sphereface,
    "triplet": _triplet,
    "contrastive": _contrastive,
}


def parse_losses(spec: str) -> dict[str, float]:
    """``"distill=1,arcface=0.1"`` (a bare name weighs 1) -> ``{name: weight}``."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, weight = part.partition("=")
        name = name.strip().lower()
        if name not in LOSSES:
            raise TrainingDataError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
        try:
            out[name] = float(weight) if weight else 1.0
        except ValueError:
            raise TrainingDataError(f"loss weight {weight!r} of {name} is not a number") from None
    if not out or not any(w > 0 for w in out.values()):
        raise TrainingDataError(f"no loss with a positive weight in {spec!r}")
    return out


def build_losses(weights: dict[str, float], classes: int, dim: int) -> nn.ModuleDict:
    """The loss modules of ``weights`` (see :func:`parse_losses`)."""
    terms = nn.ModuleDict({name: LOSSES[name](classes, dim) for name in weights})
    if classes < 2 and any(t.needs_labels for t in terms.values()):
        named = [n for n, t in terms.items() if t.needs_labels]
        raise TrainingDataError(f"{', '.join(named)} need identity labels of two or more "
                                "people; give a labelled dataset or use distill alone")
    return terms
