"""Start-up cost of the command line: ``maskface --help`` and ``import maskface``.

    python benchmarks/bench_cli_startup.py --runs 9
    python benchmarks/bench_cli_startup.py --tree /path/to/another/checkout   # compare

Each run is a fresh interpreter; prints the median and best wall time and how many modules
the command loads. ``--tree`` puts another checkout first on the path, to compare versions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "maskface --help": "import sys; sys.argv = ['maskface', '--help']\n"
                       "from maskface.cli import main\n"
                       "try:\n    main()\nexcept SystemExit:\n    pass\n",
    "import maskface": "import maskface\n",
}
COUNT = "\nimport sys; print(len(sys.modules), file=sys.stderr)\n"


def measure(code: str, runs: int, env: dict[str, str]) -> tuple[float, float, int]:
    times, modules = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code + COUNT], env=env, check=True,
                              capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        modules = int(done.stderr.strip().splitlines()[-1])
    return statistics.median(times), min(times), modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--tree", default=None, help="Another checkout to measure instead.")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.tree, env.get("PYTHONPATH")]))
    print(f"| command | median | best | modules loaded |  ({args.tree or 'this tree'})")
    print("|---|---|---|---|")
    for name, code in COMMANDS.items():
        median, best, modules = measure(code, args.runs, env)
        print(f"| `{name}` | {median:.2f} s | {best:.2f} s | {modules} |")


if __name__ == "__main__":
    main()
