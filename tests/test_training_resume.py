"""Training that is killed and resumed, moving averages, and DDP under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import read_weights, repo_path, train_config


# With a moving average the resume also restores it: slow, since the plain case runs in CI.
@pytest.mark.parametrize("ema", [0.0, pytest.param(0.9, marks=pytest.mark.slow)])
def test_resume_after_a_kill_gives_the_same_weights(chip_store, tmp_path, ema):
    from maskface.training import TrainingError, train

    whole = train(chip_store, tmp_path / "a", train_config(ema=ema), log=lambda m: None)

    def killed(message: str) -> None:
        if message.startswith("epoch 1:"):  # printed after the epoch's checkpoint is written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(chip_store, tmp_path / "b", train_config(ema=ema), log=killed)
    with pytest.raises(TrainingError, match="--resume"):
        train(chip_store, tmp_path / "b", train_config(ema=ema), log=lambda m: None)
    with pytest.raises(TrainingError, match="other settings"):
        train(chip_store, tmp_path / "b", train_config(ema=ema, lr=1e-2), resume=True,
              log=lambda m: None)
    train(chip_store, tmp_path / "b", train_config(ema=ema), resume=True, log=lambda m: None)
    a, b = read_weights(tmp_path / "a" / "model.safetensors"), read_weights(
        tmp_path / "b" / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert whole.best_epoch in (1, 2)


def test_ema_keeps_the_moving_average_of_the_weights(chip_store, tmp_path):
    from maskface.training import train

    def run(name: str, steps: int, ema: float = 0.0) -> dict:
        cfg = train_config(losses={"distill": 1.0}, epochs=1, lr=5e-3, augment=0.0,
                      steps_per_epoch=steps, ema=ema, whiten=False)
        return train(chip_store, tmp_path / name, cfg, log=lambda m: None).model.state_dict()

    def dist(a: dict, b: dict) -> float:
        return sum(float((a[k] - b[k]).abs().sum()) for k in a)

    # The first step is the same in every run; a decay of 0.99 over 4 steps leaves the
    # average within a few percent of the weights after it, while the plain run moves on.
    one, four, averaged = run("one", 1), run("four", 4), run("ema", 4, ema=0.99)
    assert dist(averaged, one) < 0.1 * dist(four, one)


@pytest.mark.slow
def test_ddp_under_torchrun_matches_one_process(chip_store, tmp_path):
    """Two gloo processes with half a batch each end where one process with the whole
    batch ends (distillation is a mean over the batch; augmentation is per face)."""
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys\nfrom maskface.training import open_store, train, TrainConfig\n"
        "cfg = TrainConfig(losses={'distill': 1.0}, epochs=1, batch_size=8, "
        "steps_per_epoch=2, val_pairs=20, seed=3)\n"
        "train(open_store(sys.argv[1]), sys.argv[2], cfg, log=lambda m: None)\n")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", str(script), str(chip_store.root), str(tmp_path / "ddp")],
        capture_output=True, text=True, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo_path()})
    assert run.returncode == 0, run.stderr[-3000:]
    from maskface.training import train

    # the subprocess's configuration, as train_config spells it
    train(chip_store, tmp_path / "one", train_config(losses={"distill": 1.0}, epochs=1),
          log=lambda m: None)
    a, b = read_weights(tmp_path / "ddp" / "model.safetensors"), read_weights(
        tmp_path / "one" / "model.safetensors")
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4
