"""Execute every notebook (as nbval does) and print its wall-clock time as a Markdown table.

    python benchmarks/notebook_times.py [--write] [notebooks/01_*.ipynb ...]

Target: under 60 s each on a 2-core CPU. Notebooks are executed in memory and nothing is written,
unless ``--write`` is given: then each executed notebook replaces the stored one (outputs included),
which is how the committed outputs are refreshed after a change to ``lib`` or to the weights.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 60


def main(paths: list[str]) -> int:
    write = "--write" in paths
    paths = [p for p in paths if p != "--write"]
    notebooks = [Path(p) for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    print("| notebook | seconds | under 60 s |")
    print("|---|---:|:---:|")
    slow = 0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        dt = time.perf_counter() - t0
        if write:
            nbformat.write(nb, path)
        slow += dt > LIMIT_S
        print(f"| {path.name} | {dt:.1f} | {'yes' if dt <= LIMIT_S else 'NO'} |", flush=True)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
