"""The Dask engine: a local cluster gives the same outputs and manifest as the process pool."""

from __future__ import annotations

import csv

import pytest

from maskface.batch.runner import run_batch
from maskface.errors import BatchError
from tests.test_batch import MarkJob, make_tree

pytest.importorskip("dask.distributed", reason="the Dask engine needs dask[distributed]")


def _rows(path):
    with open(path, newline="") as fh:
        return {r["input"]: r for r in csv.DictReader(fh)}


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and p.name != "manifest.csv"}


def test_local_cluster_matches_the_process_pool(tmp_path):
    expected = make_tree(tmp_path / "in")
    pool = run_batch(tmp_path / "in", tmp_path / "pool", MarkJob(), workers=2, seed=3,
                     progress=False)
    dask = run_batch(tmp_path / "in", tmp_path / "dask", MarkJob(), workers=2, seed=3,
                     progress=False, scheduler="local")
    assert dask.counts == pool.counts
    rows = _rows(tmp_path / "dask" / "manifest.csv")
    assert {k: r["status"] for k, r in rows.items()} == expected
    assert _files(tmp_path / "dask") == _files(tmp_path / "pool")

    # Resume: only the input that failed with an error is tried again.
    again = run_batch(tmp_path / "in", tmp_path / "dask", MarkJob(), workers=2, seed=3,
                      progress=False, scheduler="local")
    errors = sum(s == "error" for s in expected.values())
    assert again.processed == errors and again.skipped == len(expected) - errors


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    make_tree(tmp_path / "in", count=2)
    with pytest.raises(BatchError, match="Cannot reach the Dask scheduler"):
        run_batch(tmp_path / "in", tmp_path / "out", MarkJob(), progress=False,
                  scheduler="tcp://127.0.0.1:1")
