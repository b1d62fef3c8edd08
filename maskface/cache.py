"""Where maskface keeps what it can rebuild: converted weights, embedding caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$MASKFACE_CACHE``, else ``$XDG_CACHE_HOME/maskface`` (``~/.cache/maskface``)."""
    if os.environ.get("MASKFACE_CACHE"):
        return Path(os.environ["MASKFACE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "maskface"
