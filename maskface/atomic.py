"""Writes that readers never see half-done: a hidden temp file, then ``os.replace``.

A process killed mid-write leaves the old file (or none) in place plus, at worst, a hidden
``.<name>.<random>.maskface-tmp`` file, which :func:`remove_stale_temps` sweeps away.
Files are not fsynced: the writes survive a crash of the process, not of the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".maskface-tmp"


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only once the block ends without error.

    Parent directories are created. The temp file lives in the same directory, so the final
    rename never crosses file systems.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unlike mkstemp's 0600, mode 0o666 lets the umask decide, as a plain open() would; the
    # name is cut so that the temp name stays within NAME_MAX even for very long names.
    tmp = path.parent / f".{path.name[:200]}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the UTF-8 JSON :func:`write_json_atomic` writes (sorted keys, indent 2,
    trailing newline); raises ``ValueError``/``TypeError`` unless it is strictly JSON-able."""
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline) to ``path`` atomically."""
    write_bytes_atomic(path, json_bytes(obj))


def remove_stale_temps(root: str | os.PathLike[str]) -> int:
    """Delete the temp files that killed writers left under ``root``; return how many."""
    removed = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed
