"""Time `make book` from a clean tree with the smoke profile (not a test: the machine is noisy).

    python bench/book.py [--jobs 2]

Prints one row per notebook (papermill's own duration and the runner's wall time) and the total
wall time of `make clean && make book`. Target: the whole smoke book in <= 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    subprocess.run(["make", "clean"], cwd=ROOT, check=True, capture_output=True)
    started = time.perf_counter()
    done = subprocess.run(["make", "book", f"JOBS={args.jobs}"], cwd=ROOT, capture_output=True, text=True)
    total = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        return 1
    print(f"{'notebook':40s} {'papermill s':>12s} {'runner s':>10s}")
    summed = 0.0
    for notebook in sorted((ROOT / "_executed" / "smoke").glob("*.ipynb")):
        metadata = json.loads(notebook.read_text())["metadata"]
        duration = metadata.get("papermill", {}).get("duration") or float("nan")
        wall = metadata.get("ncbook", {}).get("wall_time_s", float("nan"))
        summed += duration
        print(f"{notebook.stem:40s} {duration:12.1f} {wall:10.1f}")
    print(f"{'sum of notebook durations':40s} {summed:12.1f}")
    print(f"make clean && make book (JOBS={args.jobs}): {total:.1f} s = {total / TARGET_S:.2f} x the "
          f"15-minute target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
