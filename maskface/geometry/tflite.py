"""Loading the ``.tflite`` models bundled in the MediaPipe wheel, quietly."""

from __future__ import annotations

import contextlib
import os
import warnings
from importlib.util import find_spec
from pathlib import Path


def model_path(name: str) -> str:
    """Path of a model under ``mediapipe/modules`` (e.g. ``face_landmark/face_landmark.tflite``)."""
    spec = find_spec("mediapipe")
    if spec is None or spec.origin is None:
        raise ImportError("mediapipe is not installed: pip install mediapipe==0.10.14")
    return str(Path(spec.origin).parent / "modules" / name)


@contextlib.contextmanager
def quiet():
    """Silence what the C++ runtimes print to stderr while models load."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def interpreter(name: str):
    """A single-threaded LiteRT interpreter for a bundled model, tensors allocated.

    One thread each: batch runs parallelise over processes instead.
    """
    from ai_edge_litert.interpreter import Interpreter

    with quiet():
        net = Interpreter(model_path=model_path(name), num_threads=1)
        net.allocate_tensors()
    return net
