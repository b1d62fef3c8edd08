"""Fine-tuning a recognizer to stay accurate under masks: the training loop.

The student starts as the teacher (dlib's ResNet, through the PyTorch port) and learns from a
chip store (:mod:`maskface.training.data`). Each step draws a batch from the training
people: pairs of faces of labelled people (for the identity losses) and a share of every
training image per epoch (for distillation); each face is masked with probability
``masked_fraction`` (one of its pre-rendered variants), then augmented
(:mod:`maskface.training.augment`).

Everything random is drawn from generators seeded by (seed, epoch, step), and a checkpoint
holds the model, optimiser and schedule after each epoch, so a run resumed after a kill ends
with the same weights as one that was never stopped. Under ``torchrun`` each process takes
its share of every batch and PyTorch's DistributedDataParallel averages the gradients (gloo
on CPUs, NCCL on GPUs); rank 0 validates and writes.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskface.atomic import atomic_writer, write_json_atomic
from maskface.errors import MaskfaceError
from maskface.training.augment import ChipAugment
from maskface.training.data import ChipStore, teacher_embeddings
from maskface.training.losses import build_losses
from maskface.training.whiten import fit_whitening, fold_whitening

CHECKPOINT = "checkpoint.pt"
BEST = "model.safetensors"
EPOCH_BEST = "best-epoch.safetensors"  # the best epoch as trained, before whitening
VAL_CONFIGS = ("masked-masked", "masked-unmasked", "unmasked-unmasked")


class TrainingError(MaskfaceError):
    """Training cannot go on (a NaN loss, a checkpoint of another run, ...)."""


@dataclass
class TrainConfig:
    """A training recipe. ``lr`` is relative: each tensor steps by about ``lr`` times its
    own mean magnitude, since dlib's tensors differ in scale by orders of magnitude."""

    losses: dict[str, float] = field(default_factory=lambda: {"distill": 1.0})
    epochs: int = 6
    batch_size: int = 32
    masked_fraction: float = 0.75
    identity_fraction: float = 0.25  # share of a batch drawn as two faces of one person
    twin_fraction: float = 0.25  # with the consistency loss: share drawn as one face twice
    lr: float = 2e-3
    head_lr: float = 1e-2  # absolute, for the losses' own parameters (class centres)
    warmup: float = 0.05
    freeze: int = 1  # input stages kept as they are: 0 none, 1 the stem, up to 6
    augment: float = 1.0  # strength of the chip augmentations, 0 for none
    mirror: bool = True
    ema: float = 0.0  # decay of a moving average of the weights, validated and kept; 0 off
    whiten: bool = True  # fold within-face whitening into the model when validation gains
    seed: int = 0
    val_pairs: int = 1000  # same-person and as many different-person validation pairs
    steps_per_epoch: int | None = None  # default: one pass over the training images

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """What :func:`train` did: per-epoch history, the best epoch and where the files are."""

    out: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    seconds: float
    model: nn.Module
    whitening: dict[str, Any] | None = None  # validation scores without and with it


# ---------------------------------------------------------------------------------------------
# Model


def student_model(weights: str | os.PathLike[str] | None = None) -> nn.Module:
    """The dlib ResNet port with dlib's weights (or ``weights``, a safetensors state dict)."""
    from maskface.recognizers.dlib_resnet import DlibResNet, dlib_resnet

    if weights is None:
        return dlib_resnet()
    from safetensors.torch import load_file

    model = DlibResNet()
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    model.load_state_dict(state)
    return model.eval()


class Objective(nn.Module):
    """Student plus loss terms in one module, so DDP sees (and syncs) every parameter."""

    def __init__(self, student: nn.Module, terms: nn.ModuleDict, weights: dict[str, float]):
        super().__init__()
        self.student, self.terms, self.weights = student, terms, weights

    def forward(self, x: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        emb = self.student(x)
        parts = {name: term(emb, teacher, labels) for name, term in self.terms.items()}
        total = sum(self.weights[n] * v for n, v in parts.items())
        return total, parts


def _param_groups(obj: Objective, config: TrainConfig) -> list[dict[str, Any]]:
    groups = []
    for p in obj.student.parameters():
        if p.requires_grad:
            scale = float(p.detach().abs().mean()) or 1e-3
            groups.append({"params": [p], "lr": config.lr * scale, "base": config.lr * scale})
    head = [p for p in obj.terms.parameters() if p.requires_grad]
    if head:
        groups.append({"params": head, "lr": config.head_lr, "base": config.head_lr})
    return groups


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    ramp = max(1, round(warmup * total))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - ramp) / max(1, total - ramp))))

    return factor


def to_input(chips: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> float (B, 3, S, S) channels-last, 0..255 as the port expects."""
    return torch.from_numpy(chips).to(device).float().permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------
# Batches


class Batches:
    """The deterministic batch plan of a store: rows, slots and mirror flags per step."""

    def __init__(self, store: ChipStore, config: TrainConfig) -> None:
        self.store, self.config = store, config
        self.rows = store.indices("train")
        if not len(self.rows):
            raise TrainingError("no usable training image in the chip store")
        self.labels = store.identities(self.rows)
        by_person: dict[int, list[int]] = {}
        for r, label in zip(self.rows, self.labels, strict=True):
            if label >= 0:
                by_person.setdefault(int(label), []).append(int(r))
        self.pairs_of = [v for _, v in sorted(by_person.items()) if len(v) >= 2]
        self.label_of = dict(zip(self.rows.tolist(), self.labels.tolist(), strict=True))
        self.classes = int(self.labels.max()) + 1 if (self.labels >= 0).any() else 0
        b = config.batch_size
        self.n_pairs = (round(config.identity_fraction * b) // 2) if self.pairs_of else 0
        self.n_twins = (round(config.twin_fraction * b) // 2
                        if config.losses.get("consistency", 0) > 0 else 0)
        self.n_rest = b - 2 * self.n_pairs - self.n_twins  # faces drawn once per epoch
        self.steps = config.steps_per_epoch or math.ceil(len(self.rows) / max(1, self.n_rest))

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, slots, mirror) of one step; pairs of one person stay adjacent, and so do
        twins (one face in two masks, mirrored alike)."""
        cfg = self.config
        order = np.random.default_rng([cfg.seed, epoch]).permutation(self.rows)
        rest = order[(step * self.n_rest) % len(order):][: self.n_rest]
        if len(rest) < self.n_rest:  # wrap around at the end of the permutation
            rest = np.concatenate([rest, order[: self.n_rest - len(rest)]])
        rng = np.random.default_rng([cfg.seed, epoch, step])
        rows: list[int] = []
        if self.n_pairs:
            many = self.n_pairs > len(self.pairs_of)
            for p in rng.choice(len(self.pairs_of), self.n_pairs, replace=many):
                rows += rng.choice(self.pairs_of[p], 2, replace=False).tolist()
        rows += np.repeat(rest[: self.n_twins], 2).tolist() + rest[self.n_twins:].tolist()
        rows_a = np.array(rows, np.int64)
        slots = np.zeros(len(rows_a), np.int64)
        ok = self.store.ok
        for j, r in enumerate(rows_a):
            masked = np.flatnonzero(ok[r, 1:]) + 1
            if len(masked) and rng.random() < cfg.masked_fraction:
                slots[j] = masked[rng.integers(len(masked))]
        mirror = (rng.random(len(rows_a)) < 0.5) if cfg.mirror else np.zeros(len(rows_a), bool)
        for k in range(2 * self.n_pairs, 2 * (self.n_pairs + self.n_twins), 2):
            masked = np.flatnonzero(ok[rows_a[k], 1:]) + 1
            # Two different masks when the face has them, else a mask and the bare face.
            pick = rng.permutation(masked)[:2] if len(masked) else np.zeros(0, np.int64)
            slots[k:k + 2] = np.concatenate([pick, [0, 0]])[:2]
            mirror[k + 1] = mirror[k]
        return rows_a, slots, mirror


# ---------------------------------------------------------------------------------------------
# Validation


def validation_pairs(store: ChipStore, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` same-person and ``n`` different-person pairs (a, b, same) among the
    validation people, seeded."""
    rows = store.indices("val")
    labels = store.identities(rows)
    rng = np.random.default_rng([seed, 7])
    by: dict[int, list[int]] = {}
    for r, label in zip(rows, labels, strict=True):
        if label >= 0:
            by.setdefault(int(label), []).append(int(r))
    same = [(a, b) for v in by.values() for i, a in enumerate(v) for b in v[i + 1:]]
    if not same:
        return np.zeros((0, 3), np.int64)
    same_a = np.array(same, dtype=np.int64)[rng.permutation(len(same))[:n]]
    people = list(by.values())
    diff = set()
    tries = 0
    while len(diff) < len(same_a) and tries < 50 * n and len(people) > 1:
        tries += 1
        p, q = rng.choice(len(people), 2, replace=False)
        diff.add((int(rng.choice(people[p])), int(rng.choice(people[q]))))
    diff_a = np.array(sorted(diff), dtype=np.int64).reshape(-1, 2)
    return np.concatenate([np.c_[same_a, np.ones(len(same_a), np.int64)],
                           np.c_[diff_a, np.zeros(len(diff_a), np.int64)]])


@torch.inference_mode()
def embed_store(model: nn.Module, store: ChipStore, rows: np.ndarray, slots: np.ndarray,
                device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Unit embeddings of the chips at (rows, slots)."""
    model.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        r, s = rows[start:start + batch_size], slots[start:start + batch_size]
        chips = np.stack([store.chips[i, j] for i, j in zip(r, s, strict=True)])
        out.append(F.normalize(model(to_input(chips, device)), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 128), np.float32)


def validate(model: nn.Module, store: ChipStore, pairs: np.ndarray, device: torch.device
             ) -> dict[str, float]:
    """10-fold accuracy on the validation pairs in each configuration, and their mean."""
    from maskface.evaluation.metrics import kfold_accuracy

    n_same = int(pairs[:, 2].sum()) if len(pairs) else 0
    k = min(10, n_same, len(pairs) - n_same)
    if k < 2:
        return {}  # too few validation people for a threshold to be tested
    rows = np.unique(pairs[:, :2])
    first_masked = np.array([int(np.flatnonzero(store.ok[r, 1:])[0]) + 1
                             if store.ok[r, 1:].any() else 0 for r in rows])
    bare = dict(zip(rows.tolist(), embed_store(model, store, rows, np.zeros_like(rows), device),
                    strict=True))
    masked = dict(zip(rows.tolist(), embed_store(model, store, rows, first_masked, device),
                      strict=True))
    labels = pairs[:, 2].astype(bool)
    out = {}
    for name, (ea, eb) in {"masked-masked": (masked, masked),
                           "masked-unmasked": (masked, bare),
                           "unmasked-unmasked": (bare, bare)}.items():
        scores = np.array([float(ea[a] @ eb[b]) for a, b, _ in pairs])
        out[name] = kfold_accuracy(labels, scores, k=k).mean
    out["score"] = float(np.mean([out[c] for c in VAL_CONFIGS]))
    return out


# ---------------------------------------------------------------------------------------------
# Distributed helpers


def _dist() -> tuple[int, int]:
    """(rank, world size): from torchrun's environment, initialising the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def default_device(rank: int = 0) -> torch.device:
    """CUDA (this process's GPU under torchrun) when present, else the CPU."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local % torch.cuda.device_count())
        return torch.device("cuda", local % torch.cuda.device_count())
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Training


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_writer(path) as f:
        torch.save(state, f)


def save_weights(model: nn.Module, path: str | os.PathLike[str], *, half: bool = False,
                 metadata: dict[str, str] | None = None) -> Path:
    """The student's state dict as safetensors (``half``: fp16), atomically."""
    from safetensors.torch import save

    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
             .contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_writer(path) as f:
        f.write(save(state, metadata={"arch": "dlib-resnet", **(metadata or {})}))
    return path


def _write_history(out: Path, config: TrainConfig, history: list[dict[str, Any]],
                   best_epoch: int, whitening: dict[str, Any] | None = None) -> None:
    write_json_atomic(out / "history.json", {"config": config.as_dict(), "history": history,
                                             "best_epoch": best_epoch,
                                             "whitening": whitening})


def _whitened_if_better(model: nn.Module, store: ChipStore, pairs: np.ndarray,
                        device: torch.device, score: float, seed: int,
                        say: Callable[[str], None]) -> tuple[nn.Module, dict[str, Any] | None]:
    """``model`` with within-face whitening folded in if that raises the validation
    ``score``, and the scores (None when validation cannot score)."""
    whitened = fold_whitening(model, fit_whitening(model, store, device, seed=seed))
    after = validate(whitened, store, pairs, device).get("score")
    if after is None:
        return model, None
    info = {"score_before": score, "score_after": after, "kept": after > score}
    say(f"within-face whitening: validation {score:.4f} -> {after:.4f}, "
        + ("kept" if info["kept"] else "not kept"))
    return (whitened if info["kept"] else model), info


def train(store: ChipStore, out: str | os.PathLike[str], config: TrainConfig | None = None,
          *, resume: bool = False, init: str | os.PathLike[str] | None = None,
          device: torch.device | None = None, progress: bool = False,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Fine-tune the dlib ResNet port on ``store``; write checkpoints, the best weights and
    the history to ``out``.

    ``resume`` continues from ``out``'s checkpoint (the same config is required); without it
    an existing checkpoint is refused, so no run is overwritten by accident.
    """
    config = config or TrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = _dist()
    device = device or default_device(rank)
    say = (log or print) if rank == 0 else (lambda _m: None)
    if config.batch_size % (2 * world):
        raise TrainingError(f"--batch-size {config.batch_size} must be a multiple of "
                            f"{2 * world} (two faces per person, {world} processes)")
    plan = Batches(store, config)
    # A model file says how its chips are cut, so every command cuts them that way.
    meta = {"maskface.alignment": store.settings.alignment}
    teacher = torch.from_numpy(teacher_embeddings(store, progress=progress and rank == 0))
    torch.manual_seed(config.seed)
    student = student_model(init)
    from maskface.recognizers.dlib_resnet import stages

    for modules in stages(student)[: config.freeze]:
        for m in modules:
            m.requires_grad_(False)
    terms = build_losses(config.losses, max(plan.classes, 0), 128)
    obj = Objective(student, terms, config.losses).to(device)
    student.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(_param_groups(obj, config))
    total_steps = config.epochs * plan.steps
    factor = _schedule(total_steps, config.warmup)
    history: list[dict[str, Any]] = []
    best_score, best_epoch, start_epoch = -math.inf, 0, 1
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        if not resume:
            raise TrainingError(f"{out} already holds a run; pass --resume to continue it or "
                                "choose another --out")
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["config"] != config.as_dict() or ckpt["store"] != store.fingerprint():
            raise TrainingError(f"the run in {out} used other settings or data; resume it "
                                "with the same command, or choose another --out")
        obj.load_state_dict(ckpt["objective"])
        optimiser.load_state_dict(ckpt["optimiser"])
        history, best_score, best_epoch = ckpt["history"], ckpt["best_score"], ckpt["best_epoch"]
        start_epoch = ckpt["epoch"] + 1
        say(f"resuming after epoch {ckpt['epoch']} of {config.epochs}")
    # The moving average (rank 0 only: it alone validates and saves) smooths the epoch-to-epoch
    # wander of the weights that makes a single epoch's validation score a lottery.
    ema = None
    if config.ema and rank == 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(config.ema),
                            use_buffers=True)
        if start_epoch > 1:
            ema.load_state_dict(ckpt["ema"])
    kept = ema.module if ema is not None else student
    model: nn.Module = obj
    if world > 1:
        # The only buffer is the constant input mean; broadcasting it every step is wasted
        # work, and its channels-last layout trips gloo's overlap check on torch 2.13.
        model = nn.parallel.DistributedDataParallel(obj, broadcast_buffers=False)
    augment = ChipAugment(strength=config.augment)
    val_pairs = validation_pairs(store, config.val_pairs, config.seed) if rank == 0 else None
    local = config.batch_size // world
    t_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        obj.train()
        t0 = time.perf_counter()
        steps = range(plan.steps)
        bar = None
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(steps, desc=f"epoch {epoch}/{config.epochs}", unit="step",
                       smoothing=0.05)
            steps = bar
        sums: dict[str, float] = {}
        seen = 0
        for step in steps:
            global_step = (epoch - 1) * plan.steps + step
            for g in optimiser.param_groups:
                g["lr"] = g["base"] * factor(global_step)
            rows, slots, mirror = plan.batch(epoch, step)
            part = slice(rank * local, (rank + 1) * local)
            rows, slots, mirror = rows[part], slots[part], mirror[part]
            chips = np.stack([store.chips[r, s] for r, s in zip(rows, slots, strict=True)])
            chips[mirror] = chips[mirror][:, :, ::-1]
            rngs = [np.random.default_rng([config.seed, epoch, step, rank * local + j])
                    for j in range(len(rows))]
            chips, _ = augment(chips, slots > 0, rngs)
            target = teacher[rows, mirror.astype(np.int64)].to(device)
            labels = torch.as_tensor([plan.label_of[int(r)] for r in rows], device=device)
            loss, parts = model(to_input(chips, device), target, labels)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at epoch {epoch}, step {step + 1}: lower "
                    "--lr, or check the data (the last checkpoint is kept)")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if ema is not None:
                ema.update_parameters(student)
            seen += len(rows) * world
            for name, v in {"loss": loss, **parts}.items():
                sums[name] = sums.get(name, 0.0) + v.item() * len(rows)
            if bar is not None:
                rate = seen / max(1e-9, time.perf_counter() - t0)
                bar.set_postfix(loss=f"{sums['loss'] / (seen / world):.4f}",
                                img_s=f"{rate:.0f}", refresh=False)
        seconds = time.perf_counter() - t0
        entry: dict[str, Any] = {"epoch": epoch, "seconds": round(seconds, 1),
                                 "images_per_second": round(seen / seconds, 1)}
        entry.update({f"train_{k}": v / (seen / world) for k, v in sums.items()})
        if rank == 0:
            t1 = time.perf_counter()
            val = validate(kept, store, val_pairs, device)
            entry.update({f"val_{k}": v for k, v in val.items()})
            entry["val_seconds"] = round(time.perf_counter() - t1, 1)
            score = val.get("score", -entry["train_loss"])
            if score > best_score:
                best_score, best_epoch = score, epoch
                save_weights(kept, out / EPOCH_BEST, metadata=meta)
            history.append(entry)
            _save_checkpoint(ckpt_path, {
                "epoch": epoch, "objective": obj.state_dict(), "optimiser":
                optimiser.state_dict(), "history": history, "best_score": best_score,
                "best_epoch": best_epoch, "config": config.as_dict(),
                "store": store.fingerprint(),
                "ema": ema.state_dict() if ema is not None else None})
            _write_history(out, config, history, best_epoch)
            say(f"epoch {epoch}: " + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in entry.items() if k != "epoch"))
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    best = (student_model(out / EPOCH_BEST).to(device) if (out / EPOCH_BEST).exists()
            else copy.deepcopy(kept))
    whitening = None
    if rank == 0:
        # Rebuilt from the best epoch's file each time, so a resumed run whitens once.
        if config.whiten and val_pairs is not None and best_epoch:
            best, whitening = _whitened_if_better(best, store, val_pairs, device, best_score,
                                                  config.seed, say)
        save_weights(best, out / BEST, metadata=meta)
        _write_history(out, config, history, best_epoch, whitening)
    return TrainResult(out, history, best_epoch, best_score, time.perf_counter() - t_start,
                       best, whitening)
