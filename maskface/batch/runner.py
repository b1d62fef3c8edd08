"""Apply a per-image job to a file or a folder tree, in parallel, resumably.

The runner walks the inputs lazily, reads each image, calls the job with a seed derived from
the input's relative path, writes whatever the job returns under the output folder (atomically,
in the worker process) and records one manifest row per input in the parent. See
:mod:`maskface.batch.manifest` for the manifest and how a killed run resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import pickle
import posixpath
import signal
import sys
import threading
import time
import traceback
import unicodedata
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from maskface import __version__
from maskface.atomic import json_bytes, remove_stale_temps, write_bytes_atomic
from maskface.batch.manifest import (
    STATUSES,
    Journal,
    ManifestRow,
    csv_to_parquet,
    parquet_to_csv,
    require_pyarrow,
)
from maskface.errors import BatchError, ImageReadError, OutputError
from maskface.imageio import (
    DEFAULT_MAX_PIXELS,
    encode_image,
    is_image_path,
    iter_images,
    read_image,
)

try:
    import fcntl
except ImportError:  # Windows: runs are then not protected against a concurrent second run.
    fcntl = None  # type: ignore[assignment]

JOB_STATUSES: tuple[str, ...] = ("ok", "no_face")
# Tasks queued per worker beyond the one it runs: enough to keep it busy, few enough that a
# million inputs never sit in memory at once.
_QUEUE_PER_WORKER = 2
_REASON_MAX = 300
# Output-name plans kept for folders the walk may come back to (after a subfolder).
_PLANS_KEPT = 256


@dataclass(frozen=True)
class JobOutput:
    """One file a job wants written, at ``relpath`` (``/``-separated) under the output root.

    ``data`` is a ``uint8`` image (gray, RGB or RGBA; format from the extension), raw bytes,
    or a JSON-able dict.
    """

    relpath: str
    data: np.ndarray | bytes | dict[str, Any]


@dataclass
class JobResult:
    """What a job made of one image: ``status`` is ``"ok"`` or ``"no_face"``; ``reason`` says
    why not ``ok`` (the manifest's reason column)."""

    status: str
    outputs: list[JobOutput] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


class Job(Protocol):
    """A per-image job.

    It must be picklable: each worker process receives one copy, once, and keeps it for all its
    images. Heavy models are best loaded lazily on the first call (and left out of the pickled
    state), so that each worker loads them once. ``relpath`` is the input's path relative to the
    input root; output names should derive from it, so that two inputs never share an output.
    ``seed`` is the input's own seed, for ``numpy.random.default_rng(seed)``.

    Optional members the runner uses when a job has them:

    * ``output_names(relpath) -> list[str]``: every output the job may write for an input.
      The runner then makes sure no two inputs of a folder share an output (compared
      ignoring case, as on macOS and Windows): an input whose outputs would collide with a
      sibling's has them named after ``<name><ext>`` instead (``a.JPG`` -> ``a.JPG.jpg``),
      passed as ``output=`` to ``__call__``. Inputs done by an earlier run keep their names;
      then inputs whose output keeps their own file name come first, the rest in sorted order.
    * ``options() -> dict``: the settings that decide the outputs, recorded with the run so
      that a resumed run with other settings is refused (dataclass fields are used otherwise).
    * ``keeps_alpha = True``: images with transparency are passed as RGBA, not RGB.
    """

    def __call__(self, image: np.ndarray, *, relpath: str, seed: int) -> JobResult: ...


@dataclass(frozen=True)
class BatchSummary:
    """Counts of one run. ``counts`` covers the inputs processed now; ``skipped`` those already
    done by an earlier run of the same manifest."""

    counts: dict[str, int]
    skipped: int
    elapsed: float
    manifest: Path
    interrupted: bool = False
    # Statuses of every input in the manifest, earlier runs' included.
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Inputs of the manifest whose latest row is ``unreadable`` or ``error``."""
        return self.totals.get("unreadable", 0) + self.totals.get("error", 0)

    @property
    def processed(self) -> int:
        return sum(self.counts.values())

    @property
    def images_per_second(self) -> float:
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        counts = ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATUSES)
        text = (
            f"{self.processed} images in {self.elapsed:.1f} s "
            f"({self.images_per_second:.1f}/s): {counts}"
        )
        if self.skipped:
            text += f"; {self.skipped} already done"
        text += f"; manifest {self.manifest}"
        if self.interrupted:
            text += " (interrupted: run again to resume)"
        return text


def seed_for(seed: int, relpath: str) -> int:
    """The seed of one input: a function of the run's ``seed`` and the input's relative path only.

    ``blake2b`` makes the path a stable number (Python's ``hash`` changes between processes).
    """
    digest = hashlib.blake2b(relpath.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    sequence = np.random.SeedSequence([seed, int.from_bytes(digest, "little")])
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def run_batch(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    job: Job,
    *,
    workers: int | None = None,
    seed: int = 0,
    manifest: str = "manifest.csv",
    resume: bool = True,
    progress: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    scheduler: str | None = None,
    force: bool = False,
) -> BatchSummary:
    """Run ``job`` on every image of ``input`` (a file, or a folder walked recursively).

    Outputs go under ``output`` with the input tree's layout, as the job names them; inputs are
    never written to. ``manifest`` (``*.csv`` or ``*.parquet``, relative to ``output``) gets one
    row per input. ``workers`` processes run the job (default: one per CPU; 1 runs it in this
    process). With ``resume`` the inputs the manifest already covers are skipped, except those
    that failed with ``error``. The run's settings (seed, pixel limit, the job's options) are
    recorded beside the manifest (``<manifest>.run.json``); resuming with other settings
    raises :class:`BatchError` unless ``force`` (the outputs would mix two runs). Images above
    ``max_pixels`` are recorded as ``unreadable`` (``too_large``). Ctrl-C stops after the images
    being processed and returns a summary with ``interrupted`` set. Raises
    :class:`BatchError` when the run cannot start (:class:`OutputError` when the output
    folder cannot be written).

    ``scheduler`` runs the job on a Dask cluster instead of the local pool: ``"local"`` starts
    one on this machine with ``workers`` processes, an address such as ``tcp://host:8786``
    joins a running one (OUTPUT must then be on storage every worker reaches). Manifest,
    resume and determinism are the same.
    """
    started = time.perf_counter()
    source, root, out_root = _check_paths(Path(input), Path(output))
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise BatchError(f"workers must be at least 1, got {workers}.")
    if seed < 0:
        raise BatchError(f"seed must be a non-negative integer, got {seed}.")
    manifest_path = out_root / manifest
    suffix = manifest_path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BatchError(f"The manifest must be named *.csv or *.parquet, not {manifest!r}.")
    if suffix == ".parquet":
        require_pyarrow()
        journal_path = manifest_path.with_name(manifest_path.stem + ".journal.csv")
    else:
        journal_path = manifest_path
    record_path = manifest_path.with_name(manifest_path.stem + ".run.json")
    settings = {"seed": seed, "max_pixels": max_pixels, "job": _job_options(job)}

    with contextlib.ExitStack() as stack:
        with _writable(out_root, output):
            out_root.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_exclusive(out_root))
            earlier = resume and (journal_path.exists() or manifest_path.exists())
            _check_settings(record_path, settings, earlier=earlier, force=force)
            if journal_path.exists():
                # Left by writers of a killed run; the outputs they were writing will be redone.
                remove_stale_temps(out_root)
            elif resume and manifest_path.exists():
                parquet_to_csv(manifest_path, journal_path)
            journal = Journal(journal_path, resume=resume)
        worker = _Worker(
            job=job,
            output_root=out_root,
            protected=source,
            reserved=frozenset({manifest_path, journal_path, record_path}),
            max_pixels=max_pixels,
        )
        skipped = 0
        names = _OutputNames(job, journal) if source.is_dir() else None

        def pending() -> Iterator[tuple[Path, str]]:
            nonlocal skipped
            for path in [source] if source.is_file() else iter_images(source):
                relpath = path.relative_to(root).as_posix()
                if journal.is_done(relpath):
                    skipped += 1
                else:
                    yield path, relpath

        def make_task(path: Path, relpath: str) -> _Task:
            output = names.output_for(path, relpath) if names is not None else None
            return _Task(os.fspath(path), relpath, seed_for(seed, relpath), output)

        counts: Counter[str] = Counter()
        interrupted = completed = False
        try:
            # Counting first costs one more walk of the tree but gives the bar an ETA.
            total = sum(1 for _ in pending()) if progress else None
            skipped = 0
            tasks = (make_task(p, r) for p, r in pending())
            with tqdm(
                total=total, unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True
            ) as bar:

                def record(row: ManifestRow) -> None:
                    journal.append(row)
                    counts[row.status] += 1
                    bar.update()
                    bar.set_postfix_str(
                        ", ".join(f"{s} {counts[s]}" for s in STATUSES if counts[s]),
                        refresh=False,
                    )

                if scheduler is not None:
                    _run_dask(tasks, worker, workers, scheduler, record)
                elif workers == 1:
                    for task in tasks:
                        record(worker.run(task))
                else:
                    _run_parallel(tasks, worker, workers, record)
            completed = True
        except KeyboardInterrupt:
            interrupted = True
        finally:
            journal.close(compact=completed)
        if completed and journal_path != manifest_path:
            csv_to_parquet(journal_path, manifest_path)
            journal_path.unlink()
    return BatchSummary(
        counts={s: counts[s] for s in STATUSES},
        skipped=skipped,
        elapsed=time.perf_counter() - started,
        manifest=manifest_path,
        interrupted=interrupted,
        totals=journal.counts(),
    )


@contextlib.contextmanager
def _writable(out_root: Path, given: Path) -> Iterator[None]:
    """Turn an OS refusal to write the output folder into one clear :class:`OutputError`."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or out_root
        raise OutputError(
            f"Cannot write to the output folder {given}: {exc.strerror or exc} ({where})."
        ) from None


def _job_options(job: Job) -> Any:
    """What the run record says about the job: its ``options()`` or dataclass fields."""
    if hasattr(job, "options"):
        options = job.options()
    elif dataclasses.is_dataclass(job):
        options = {"job": type(job).__qualname__,
                   **{f.name: getattr(job, f.name) for f in dataclasses.fields(job) if f.init}}
    else:
        options = {"job": type(job).__qualname__}
    # A canonical JSON form, so that a record read back compares equal to a fresh one.
    return json.loads(json.dumps(options, sort_keys=True, default=repr))


def _check_settings(path: Path, settings: dict[str, Any], *, earlier: bool,
                    force: bool) -> None:
    """Record this run's settings; refuse (unless ``force``) to resume a run made with others."""
    record = None
    if earlier and path.exists():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
    if isinstance(record, dict) and isinstance(record.get("settings"), dict):
        before = record["settings"]
        if before == settings:
            return
        changes = "; ".join(_differences(before, settings)) or "other settings"
        if not force:
            raise BatchError(
                f"The output in {path.parent} was made with other settings ({changes}), and "
                "resuming would mix two runs in it. Use the same settings, another output "
                "folder, --no-resume to start afresh, or --force to mix them anyway."
            )
        history = [*record.get("earlier", []), before]
    else:
        history = []
    body = {"maskface": __version__, "settings": settings}
    if history:
        body["earlier"] = history
    write_bytes_atomic(path, json_bytes(body))


def _differences(before: Any, now: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(now, dict):
        out = []
        for key in sorted(set(before) | set(now)):
            name = f"{prefix}{key}" if prefix != "job." else key
            out += _differences(before.get(key), now.get(key), f"{name}.")
        return out
    return [] if before == now else [f"{prefix.rstrip('.')} {before!r} -> {now!r}"]


class _OutputNames:
    """Gives each input of a folder outputs that no other input of that folder writes.

    Plans are made per folder, from a listing of its images, when its first input is seen.
    """

    def __init__(self, job: Job, journal: Journal) -> None:
        self._names = getattr(job, "output_names", None)
        self._journal = journal
        self._plans: OrderedDict[str, dict[str, str]] = OrderedDict()

    def output_for(self, path: Path, relpath: str) -> str | None:
        """The name to give ``relpath``'s outputs, or None to name them after it."""
        if self._names is None:
            return None
        folder = posixpath.dirname(relpath)
        plan = self._plans.get(folder)
        if plan is None:
            plan = self._plan(path.parent, folder)
            self._plans[folder] = plan
            if len(self._plans) > _PLANS_KEPT:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(folder)
        return plan.get(relpath)

    def _claims(self, relpath: str) -> set[str]:
        return {_fold(posixpath.basename(n)) for n in self._names(relpath)}  # type: ignore[misc]

    def _plan(self, directory: Path, folder: str) -> dict[str, str]:
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith(".")
                           and not e.is_dir(follow_symlinks=False) and is_image_path(e.name))
        relpaths = [posixpath.join(folder, n) if folder else n for n in names]
        taken: set[str] = set()
        pending = []
        for relpath in relpaths:
            if self._journal.is_done(relpath):
                taken |= self._claims(self._journal.output_base(relpath) or relpath)
            else:
                pending.append(relpath)
        # Inputs whose output keeps their own file name keep it (a.png with --format png).
        pending.sort(key=lambda r: (r not in self._names(r), r))  # type: ignore[misc]
        plan = {}
        for relpath in pending:
            for candidate in _candidates(relpath):
                claims = self._claims(candidate)
                if not claims & taken:
                    taken |= claims
                    if candidate != relpath:
                        plan[relpath] = candidate
                    break
        return plan


def _fold(name: str) -> str:
    """A file name as case-insensitive file systems compare it."""
    return unicodedata.normalize("NFC", name).casefold()


def _candidates(relpath: str) -> Iterator[str]:
    """``a.JPG``, then ``a.JPG.JPG`` (outputs ``a.JPG.jpg``...), then ``a.JPG-2.JPG``, ..."""
    path = PurePosixPath(relpath)
    yield relpath
    yield str(path.with_name(path.name + path.suffix))
    k = 2
    while True:
        yield str(path.with_name(f"{path.name}-{k}{path.suffix}"))
        k += 1


@dataclass(frozen=True)
class _Task:
    path: str
    relpath: str
    seed: int
    output: str | None = None  # the name to give the outputs, when not relpath


@dataclass(frozen=True)
class _Worker:
    """Everything a worker process needs: read, run the job, write, describe the outcome."""

    job: Job
    output_root: Path
    protected: Path
    reserved: frozenset[Path]
    max_pixels: int | None

    def run(self, task: _Task) -> ManifestRow:
        started = time.perf_counter()
        alpha = "auto" if getattr(self.job, "keeps_alpha", False) else False
        try:
            image = read_image(task.path, keep_alpha=alpha, max_pixels=self.max_pixels)
        except ImageReadError as exc:
            return ManifestRow(
                task.relpath,
                "unreadable",
                exc.reason,
                seconds=time.perf_counter() - started,
                info={"message": exc.message},
            )
        except Exception as exc:  # a reader bug must not end the batch either
            return _error_row(task, exc, time.perf_counter() - started)
        try:
            if task.output is None:
                result = self.job(image, relpath=task.relpath, seed=task.seed)
            else:
                result = self.job(image, relpath=task.relpath, seed=task.seed,
                                  output=task.output)
            info = result.info if task.output is None else {**result.info,
                                                             "output_base": task.output}
            outputs = self._write(result, info)
        except Exception as exc:
            return _error_row(task, exc, time.perf_counter() - started)
        return ManifestRow(
            task.relpath,
            result.status,
            result.reason[:_REASON_MAX],
            outputs=outputs,
            seconds=time.perf_counter() - started,
            info=info,
        )

    def _write(self, result: JobResult, info: dict[str, Any]) -> tuple[str, ...]:
        # Everything is checked and encoded before the first byte is written, so that a bad
        # result leaves no outputs behind.
        if not isinstance(result, JobResult):
            raise TypeError(f"the job returned {type(result).__name__}, not a JobResult")
        if result.status not in JOB_STATUSES:
            raise ValueError(
                f"the job returned status {result.status!r}, not one of {JOB_STATUSES}"
            )
        targets = [self._target(out.relpath) for out in result.outputs]
        relpaths = tuple(PurePosixPath(out.relpath).as_posix() for out in result.outputs)
        # Raises unless the row can be written: info JSON-able, fields not too long.
        ManifestRow("-", result.status, outputs=relpaths, info=info).to_record()
        if len({_fold(str(t)) for t in targets}) != len(targets):
            raise ValueError("the job returned the same output path twice")
        encoded = []
        for out, target in zip(result.outputs, targets, strict=True):
            if isinstance(out.data, np.ndarray):
                encoded.append(encode_image(target, out.data))
            elif isinstance(out.data, bytes):
                encoded.append(out.data)
            elif isinstance(out.data, dict):
                encoded.append(json_bytes(out.data))
            else:
                raise TypeError(f"output {out.relpath!r} holds {type(out.data).__name__}")
        for target, data in zip(targets, encoded, strict=True):
            write_bytes_atomic(target, data)
        return relpaths

    def _target(self, relpath: str) -> Path:
        pure = PurePosixPath(relpath)
        if not relpath or pure.is_absolute() or ".." in pure.parts or set(relpath) & set("\\;"):
            raise ValueError(
                f"output path {relpath!r} is not a plain path inside the output folder"
            )
        target = self.output_root.joinpath(*pure.parts)
        if target in self.reserved:
            raise ValueError(f"output path {relpath!r} would overwrite the manifest")
        if target == self.protected or target.is_relative_to(self.protected):
            raise ValueError(f"output path {relpath!r} would write into the input")
        return target


def _error_row(task: _Task, exc: BaseException, seconds: float) -> ManifestRow:
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    frames = traceback.extract_tb(exc.__traceback__)
    info = {"where": f"{frames[-1].filename}:{frames[-1].lineno}"} if frames else {}
    return ManifestRow(task.relpath, "error", reason[:_REASON_MAX], seconds=seconds, info=info)


def _check_paths(source: Path, output: Path) -> tuple[Path, Path, Path]:
    """Resolve (input, root of relative paths, output root); refuse overlapping folders."""
    if not source.exists():
        raise BatchError(f"The input {source} does not exist.")
    source = source.resolve()
    out_root = output.resolve()
    if out_root.exists() and not out_root.is_dir():
        raise BatchError(f"The output {output} exists and is not a folder.")
    if source.is_dir():
        if out_root == source or out_root.is_relative_to(source):
            raise BatchError(
                f"The output folder {output} is inside the input folder {source}; choose one "
                "outside it, so that outputs are never taken for inputs."
            )
        return source, source, out_root
    return source, source.parent, out_root


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold a lock on the output folder, so that two runs never write the same journal."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"Another maskface run is writing to {folder}.") from None
        except OSError:
            pass  # file systems without locks (some network mounts): run unprotected
        yield
    finally:
        os.close(fd)


# --- worker processes -------------------------------------------------------------------------

_WORKER: _Worker | None = None
_WORKER_INIT_ERROR = ""


class _WorkerInitError(Exception):
    """The job could not be set up in a worker process."""


def _init_worker(worker_bytes: bytes) -> None:
    global _WORKER, _WORKER_INIT_ERROR
    # Ctrl-C reaches the whole process group; only the parent decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    # One process per core already: OpenCV's own thread pool would only oversubscribe it.
    import cv2

    cv2.setNumThreads(1)
    try:
        _WORKER = pickle.loads(worker_bytes)
    except Exception as exc:
        _WORKER_INIT_ERROR = f"{type(exc).__name__}: {exc}"


def _exit_with_parent() -> None:
    # A worker holds both ends of its task queue, so it never sees the queue close: without
    # this, workers of a killed run would wait for tasks forever.
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def _ready() -> _Worker:
    if _WORKER is None:
        raise _WorkerInitError(_WORKER_INIT_ERROR)
    return _WORKER


def _ping() -> None:
    _ready()


def _work(task: _Task) -> ManifestRow:
    return _ready().run(task)


def _run_parallel(
    tasks: Iterator[_Task], worker: _Worker, workers: int, record: Callable[[ManifestRow], None]
) -> None:
    """Run tasks in a process pool with a bounded number in flight, recording rows as they come.

    A worker that dies (a crash in native code, the OOM killer) takes its pool down with every
    task in flight. Those tasks are then retried one at a time in a fresh pool, so that only
    the input that kills a worker again is recorded as an error.
    """
    try:
        worker_bytes = pickle.dumps(worker)
    except Exception as exc:
        raise BatchError(
            f"The job cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
            "make it picklable or use workers=1."
        ) from None
    # spawn, not fork: forking a parent that already runs threads (OpenCV, ML runtimes) can
    # deadlock the children, and spawn behaves the same on every OS.
    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(worker_bytes,)
        )
        # A pool whose workers die or fail as they start would otherwise look like a crash on
        # every input, one at a time.
        try:
            pool.submit(_ping).result()
        except BrokenProcessPool:
            pool.shutdown(wait=False, cancel_futures=True)
            raise BatchError(
                "Worker processes die as they start (see the messages above); "
                "workers=1 runs the job in this process, which is easier to debug."
            ) from None
        except _WorkerInitError as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            raise BatchError(f"The job could not be set up in a worker: {exc}") from None
        return pool

    pool = new_pool()
    in_flight: dict[Future[ManifestRow], _Task] = {}
    suspects: deque[_Task] = deque()
    alone: Future[ManifestRow] | None = None  # a suspect running by itself
    try:
        while True:
            if suspects:
                # Only once the dead pool's futures are all back, one suspect at a time.
                if not in_flight:
                    task = suspects.popleft()
                    alone = pool.submit(_work, task)
                    in_flight[alone] = task
            else:
                while len(in_flight) < workers * (1 + _QUEUE_PER_WORKER):
                    next_task = next(tasks, None)
                    if next_task is None:
                        break
                    in_flight[pool.submit(_work, next_task)] = next_task
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                task = in_flight.pop(future)
                try:
                    row = future.result()
                except BrokenProcessPool:
                    broken = True
                    if future is alone:
                        record(_crash_row(task))
                    else:
                        suspects.append(task)
                    continue
                except _WorkerInitError as exc:
                    raise BatchError(f"The job could not be set up in a worker: {exc}") from None
                except Exception as exc:
                    row = _error_row(task, exc, 0.0)
                record(row)
            if broken:
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    except KeyboardInterrupt:
        # Let the images being processed finish and keep their rows; queued ones are dropped.
        pool.shutdown(wait=True, cancel_futures=True)
        for future in in_flight:
            if future.done() and not future.cancelled() and future.exception() is None:
                record(future.result())
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(
    tasks: Iterator[_Task], worker: _Worker, workers: int, scheduler: str,
    record: Callable[[ManifestRow], None],
) -> None:
    from maskface.batch.dask_engine import connect, run_on_dask

    try:
        pickle.dumps(worker)
    except Exception as exc:
        raise BatchError(
            f"The job cannot be sent to Dask workers ({type(exc).__name__}: {exc})."
        ) from None
    client = connect(scheduler, workers)
    try:
        run_on_dask(tasks, worker, client, record, _crash_row)
    finally:
        cluster = client.cluster if scheduler == "local" else None
        client.close()
        if cluster is not None:
            cluster.close()


def _crash_row(task: _Task) -> ManifestRow:
    return ManifestRow(
        task.relpath,
        "error",
        "WorkerCrashed: the worker process died on this input (native crash or out of memory)",
    )
