"""Within-face whitening (WCCN), folded into the network's last layer.

Distillation teaches a masked face the embedding its bare face has, but what the mask hides
cannot be recovered: some directions of the embedding keep moving with the mask and with
the hidden mouth and chin. Whitening by the within-face covariance (the spread of one face's
embeddings across its bare chip and its masked variants) shrinks those directions and
stretches the ones a mask leaves alone. The map is linear, so it is folded into the final
fully-connected layer: the model keeps its shape and its speed.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from maskface.training.data import ChipStore


def within_face_scatter(embeddings: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The (D, D) covariance of unit embeddings about their face's mean, over faces seen
    more than once (``groups[i]`` names the face of ``embeddings[i]``)."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    means = np.zeros((len(counts), embeddings.shape[1]))
    np.add.at(means, inverse, embeddings)
    means /= counts[:, None]
    keep = counts[inverse] > 1
    dev = embeddings[keep] - means[inverse[keep]]
    # Few faces give a poor estimate, not a failure: the regulariser of whitening_map keeps
    # it invertible and validation decides whether the result is kept.
    return dev.T @ dev / max(1, len(dev))


def whitening_map(scatter: np.ndarray, reg: float = 1.0) -> np.ndarray:
    """``(S + reg * mean eigenvalue * I)^(-1/2)``, scaled to a mean gain of 1; the
    regulariser keeps the weakest directions from being blown up."""
    w, u = np.linalg.eigh(scatter)
    gain = (np.maximum(w, 0) + reg * max(float(w.mean()), 1e-12)) ** -0.5
    gain /= gain.mean()
    return (u * gain) @ u.T


def fit_whitening(model: nn.Module, store: ChipStore, device: torch.device, *,
                  sources: int = 3000, reg: float = 1.0, seed: int = 0) -> np.ndarray:
    """The whitening map of ``model``'s embeddings, from a seeded sample of the store's
    training faces, each bare and in every usable masked variant."""
    from maskface.training.trainer import embed_store  # here: the trainer imports this module

    rows = store.indices("train")
    if len(rows) > sources:
        rows = np.sort(np.random.default_rng([seed, 11]).choice(rows, sources, replace=False))
    embeddings, groups = [], []
    for slot in range(store.ok.shape[1]):
        have = rows[store.ok[rows, slot]]
        embeddings.append(embed_store(model, store, have, np.full(len(have), slot), device))
        groups.append(have)
    return whitening_map(within_face_scatter(np.concatenate(embeddings),
                                             np.concatenate(groups)), reg)


def fold_whitening(model: nn.Module, matrix: np.ndarray) -> nn.Module:
    """A copy of ``model`` whose embeddings are ``matrix @`` the original's."""
    out = copy.deepcopy(model)
    fc = out.fc
    with torch.no_grad():
        m = torch.as_tensor(matrix, dtype=fc.weight.dtype, device=fc.weight.device)
        fc.weight.copy_(m @ fc.weight)
    return out
