"""Time texture draws for every style: ``python benchmarks/bench_styles.py [--sizes ...]``.

- cold: nothing cached (the pattern and material layers are drawn too);
- warm: a new colour of a style drawn before, so only the colour-independent material layers
  are reused (what random dataset draws mostly cost);
- cached: the same style, seed and frame again.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np

from maskface.render.layout import face_frame
from maskface.styles import clear_cache, create_style, list_styles
from maskface.styles.materials import material
from maskface.styles.patterns import render_pattern
from maskface.styles.preview import demo_custom_files

# One representative look per style, and the colour its warm draw switches to.
LOOKS = {
    "surgical": ({"color": "light blue"}, "white"),
    "n95": ({"valve": True}, "light grey"),
    "kn95": ({"color": "black"}, "pink"),
    "cloth": ({"color": "navy", "pattern": "dots"}, "red"),
    "respirator": ({}, "black"),
}


def _forget_everything() -> None:
    clear_cache()
    material.cache_clear()
    render_pattern.cache_clear()


def _median_ms(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None):
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'style':<12}{'size':>6}{'cold ms':>10}{'warm ms':>10}{'cached ms':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        image, _ = demo_custom_files(tmp)
        for name in list_styles():
            params, other = LOOKS.get(name, ({"image": str(image)}, None))
            for size in args.sizes:
                frame = face_frame("correct", size)
                style = create_style(name, seed=1, **params)

                def draw(s=style, f=frame):
                    return s.draw(f, rng)

                cold = _median_ms(draw, args.repeat, setup=_forget_everything)
                warm = float("nan")
                if other is not None:
                    recolour = create_style(name, seed=1, **{**params, "color": other})
                    warm = _median_ms(
                        lambda r=recolour, f=frame: r.draw(f, rng), args.repeat,
                        setup=lambda d=draw: (clear_cache(), d()),
                    )
                draw()
                cached = _median_ms(draw, 50)
                print(f"{name:<12}{size:>6}{cold:>10.1f}{warm:>10.1f}{cached:>11.3f}")


if __name__ == "__main__":
    main()
