"""Work spread over processes, results in input order, with a bounded number in flight."""

from __future__ import annotations

import functools
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _nice(level: int) -> None:
    # Workers yield the cores to the main process (a recognizer, a training loop): torch's
    # threads spin while waiting for each other and ran several times slower beside busy
    # workers of equal priority.
    if hasattr(os, "nice"):
        os.nice(level)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, *, window: int = 16,
                nice: int = 10) -> Iterator[R]:
    """``fn(item)`` for each item, in order, computed by ``workers`` processes (in this
    process when ``workers <= 1``).

    At most ``window`` items are in flight, so memory stays flat however many items there
    are and however slowly the caller consumes them. Processes are spawned, not forked: the
    parent may hold torch's thread pools, which must not be forked."""
    items = iter(items)
    if workers <= 1:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=functools.partial(_nice, nice)) as pool:
        in_flight = deque(pool.submit(fn, item) for item in itertools.islice(items, window))
        while in_flight:
            done = in_flight.popleft().result()
            in_flight.extend(pool.submit(fn, item) for item in itertools.islice(items, 1))
            yield done
