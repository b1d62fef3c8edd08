"""Running a batch on a Dask cluster: the same job, manifest and resume as on one machine.

Why Dask rather than Ray: Dask's distributed scheduler is a pure-Python pip install, starts a
local cluster in a second, and reaches the places research groups run their jobs (SSH hosts,
Slurm/PBS/SGE through dask-jobqueue, Kubernetes) with the same ``Client`` API. Our work is a
stream of independent, one-image tasks with no shared state, which needs no actor model or
object store.

The parent process still walks the inputs, keeps a bounded window of tasks in flight and
writes every manifest row, so resume works exactly as with the local pool. Workers write the
outputs themselves, so OUTPUT must be on storage every worker can reach (a shared file system
on a real cluster). The job is pickled once and unpickled once per worker process.
"""

from __future__ import annotations

import hashlib
import pickle
import socket
from collections.abc import Callable, Iterator
from typing import Any

from maskface.errors import BatchError

_WORKERS: dict[str, Any] = {}  # per worker process: job digest -> unpickled worker


def _run_remote(digest: str, worker_bytes: bytes, task: Any) -> Any:
    worker = _WORKERS.get(digest)
    if worker is None:
        import cv2

        cv2.setNumThreads(1)  # one task per worker thread already
        worker = _WORKERS[digest] = pickle.loads(worker_bytes)
    return worker.run(task)


def connect(scheduler: str, workers: int | None):
    """A Dask client: ``"local"`` starts a cluster of ``workers`` processes on this machine,
    anything else is a scheduler address such as ``tcp://10.0.0.5:8786``."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise BatchError(
            "The Dask engine needs dask.distributed: pip install 'maskface[dask]'."
        ) from None
    # The worker's statistical profiler samples every running thread every few milliseconds:
    # measurable on one-image tasks, and nobody reads it here.
    dask.config.set({"distributed.worker.profile.enabled": False})
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster)
    # A plain connection first: the client would retry a refused address until its timeout.
    host, _, port = scheduler.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
        return Client(scheduler, timeout="30s")
    except (OSError, ValueError) as exc:
        raise BatchError(f"Cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def run_on_dask(
    tasks: Iterator[Any],
    worker: Any,
    client: Any,
    record: Callable[[Any], None],
    crash_row: Callable[[Any], Any],
    per_worker: int = 3,
) -> None:
    """Run ``worker.run`` over ``tasks`` on the cluster, recording each row as it comes back.

    At most ``per_worker`` tasks per worker thread are in flight, so memory in the parent and
    on the scheduler stays flat however long the input is. A task whose worker keeps dying is
    recorded with ``crash_row``.
    """
    from dask.distributed import as_completed
    from distributed import KilledWorker

    worker_bytes = pickle.dumps(worker)
    digest = hashlib.blake2b(worker_bytes, digest_size=16).hexdigest()
    payload = client.scatter(worker_bytes, broadcast=True)
    threads = max(1, sum(client.nthreads().values()))
    window = threads * per_worker
    in_flight: dict[Any, Any] = {}

    def submit(task: Any) -> Any:
        future = client.submit(_run_remote, digest, payload, task, pure=False)
        in_flight[future] = task
        return future

    pending = as_completed([submit(t) for t in _take(tasks, window)])
    try:
        for future in pending:
            task = in_flight.pop(future)
            try:
                row = future.result()
            except KilledWorker:
                row = crash_row(task)
            record(row)
            for nxt in _take(tasks, 1):
                pending.add(submit(nxt))
    except KeyboardInterrupt:
        client.cancel(list(in_flight))
        raise


def _take(tasks: Iterator[Any], n: int) -> list[Any]:
    out = []
    for task in tasks:
        out.append(task)
        if len(out) == n:
            break
    return out
