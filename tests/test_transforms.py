"""AddMask as an albumentations transform: Compose, seeding, serialisation, laziness, workers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskface.transforms import HAS_ALBUMENTATIONS, AddMask

needs_albumentations = pytest.mark.skipif(
    not HAS_ALBUMENTATIONS, reason="albumentations is not installed (the 'augment' extra)")


@needs_albumentations
def test_addmask_is_an_albumentations_transform_inside_compose(astronaut):
    import albumentations as A

    assert isinstance(AddMask(), A.ImageOnlyTransform)
    pipeline = A.Compose([AddMask(styles=["surgical", "kn95"], p=1.0),
                          A.HorizontalFlip(p=1.0)], seed=4)
    out = pipeline(image=astronaut)
    changed = np.abs(out["image"].astype(int) - astronaut[:, ::-1].astype(int)).sum(axis=2) > 30
    # The mask is drawn, then flipped: the changed pixels sit on the (mirrored) lower face.
    ys, xs = np.nonzero(changed)
    assert changed.mean() > 0.01
    assert 100 < ys.mean() < 260 and astronaut.shape[1] - 300 < xs.mean()


@needs_albumentations
def test_compose_seed_fixes_the_masks(astronaut):
    import albumentations as A

    def run(seed):
        pipe = A.Compose([AddMask(styles=["surgical", "kn95", "cloth", "n95"])], seed=seed)
        return [pipe(image=astronaut)["image"] for _ in range(3)]

    a, b, c = run(1), run(1), run(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert not np.array_equal(a[0], a[1])  # calls in a row differ


@needs_albumentations
def test_addmask_serialises_with_to_dict(astronaut):
    import albumentations as A

    pipe = A.Compose([AddMask(styles=["kn95"], wear=["correct", "under_nose"], p=0.5)], seed=3)
    spec = json.loads(json.dumps(A.to_dict(pipe)))  # as A.save writes it
    entry = spec["transform"]["transforms"][0]
    assert entry["styles"] == ["kn95"] and entry["p"] == 0.5
    assert entry["__class_fullname__"].endswith("AddMask")
    again = A.from_dict(spec)
    assert isinstance(again.transforms[0], AddMask)
    assert again.transforms[0].wear == ("correct", "under_nose")


def test_analyser_is_created_on_first_use_and_never_pickled(astronaut):
    import pickle

    t = AddMask(styles=["surgical"], seed=0)
    assert t._analyser is None  # no MediaPipe graph at construction
    t(image=astronaut)
    assert t._analyser is not None
    copy = pickle.loads(pickle.dumps(t))
    assert copy._analyser is None
    assert copy(image=astronaut)["mask_params"] is not None


def _draws(num_workers: int) -> list[int]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Faces(Dataset):
        def __init__(self) -> None:
            self.t = AddMask(styles=["surgical", "kn95", "cloth"], seed=0)
            self.image = np.zeros((32, 32, 3), np.uint8)

        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> int:
            return self.t.get_params()["seed"]  # what the call would paint

    torch.manual_seed(11)
    loader = DataLoader(Faces(), batch_size=None, num_workers=num_workers,
                        multiprocessing_context="fork" if num_workers else None)
    return [int(x) for x in loader]


def test_dataloader_workers_draw_different_masks_reproducibly():
    one, two, again = _draws(0), _draws(2), _draws(2)
    assert two == again  # fixed by torch.manual_seed
    # Worker 0 takes items 0, 2, 4, 6 and worker 1 items 1, 3, 5, 7: forked copies of one
    # generator would repeat each other's draws.
    assert two[0::2] != two[1::2]
    assert len(set(two)) == 8 and len(set(one)) == 8
