"""Benchmark of ncbook.metrics against one float32 GEMM X^T X (not a test).

Data: N features of dimension d in K balanced Gaussian classes, float32, torch pinned to 1 thread.
Prints one markdown table: the median time of each operation over interleaved repeats (so load
from other processes hits every row alike), its ratio to the GEMM, and the peak extra resident
memory of the operation at two sizes of N (measured in a fresh subprocess each: the peak RSS
(VmHWM, reset through /proc/self/clear_refs) minus the RSS before the call, data included in
neither). Targets (issue 3): exact NC1 <= 1.3x the GEMM, NC1-only projected path <= 0.5x,
extra memory independent of N and <= 64 MB.

    OMP_NUM_THREADS=1 .venv/bin/python bench/metrics.py [--n 50000 --dim 512 --classes 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

import ncbook.metrics as ncm

CHUNK = 8192


def make_data(n: int, dim: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Filled chunk by chunk so that building the data leaves no large temporary behind."""
    gen = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(classes, dim, generator=gen)
    labels = torch.randperm(n, generator=gen) % classes
    x = torch.empty(n, dim)
    for start in range(0, n, CHUNK):
        rows = slice(start, start + CHUNK)
        x[rows] = torch.randn(x[rows].shape, generator=gen) + means[labels[rows]]
    return x, labels


def operations(x: torch.Tensor, y: torch.Tensor, classes: int) -> dict[str, Callable[[], object]]:
    def stream() -> None:
        acc = ncm.NCAccumulator(classes)
        for start in range(0, len(y), 4096):  # a loader's batches
            acc.update(x[start : start + 4096], y[start : start + 4096])

    return {
        "X.T @ X (float32 GEMM)": lambda: x.T @ x,
        "nc1 (exact, projected 2-pass)": lambda: ncm.nc1(x, y, classes),
        "NCAccumulator pass (4096-row updates)": stream,
        "compute() (all metrics)": _filled(x, y, classes).compute,
        "nc_metrics (pass + compute)": lambda: ncm.nc_metrics(x, y, classes),
    }


class _filled:
    """An accumulator filled on first use, so that a memory probe of another op never builds one."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, classes: int) -> None:
        self.args, self.acc = (x, y, classes), None

    def compute(self) -> dict[str, float]:
        if self.acc is None:
            x, y, classes = self.args
            self.acc = ncm.NCAccumulator(classes)
            self.acc.update(x, y)
        return self.acc.compute()


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return float(line.split()[1]) / 1024  # MB
    raise RuntimeError(f"{field} not in /proc/self/status")


def probe_memory(op: str, n: int, dim: int, classes: int) -> float:
    """Peak extra resident memory (MB) of one call of ``op``, in this (fresh) process."""
    x, y = make_data(n, dim, classes)
    call = operations(x, y, classes)[op]
    if op.startswith("compute"):
        call()  # fill the accumulator first: the probe measures compute() alone
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    call()
    return _status("VmHWM") - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-n", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.probe:
        print(probe_memory(args.probe, args.n, args.dim, args.classes))
        return

    x, y = make_data(args.n, args.dim, args.classes)
    ops = operations(x, y, args.classes)
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(args.repeats):
        for name, call in ops.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    gemm = medians["X.T @ X (float32 GEMM)"]

    memory: dict[str, list[float]] = {name: [] for name in ops}
    # every large block mmapped and unmapped on free, so that freed memory is not reused unseen
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536")
    for n in args.memory_n:
        for name in ops:
            cmd = [sys.executable, __file__, "--probe", name, "--n", str(n), "--dim", str(args.dim)]
            cmd += ["--classes", str(args.classes)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            memory[name].append(float(out.stdout.split()[-1]))

    print(f"N={args.n}, d={args.dim}, K={args.classes}, float32, 1 thread, median of {args.repeats}")
    sizes = " | ".join(f"extra MB, N={n}" for n in args.memory_n)
    print(f"| operation | median s | / GEMM | {sizes} |")
    print("|---|---|---|" + "---|" * len(args.memory_n))
    for name in ops:
        mem = " | ".join(f"{m:.1f}" for m in memory[name])
        print(f"| {name} | {medians[name]:.3f} | {medians[name] / gemm:.2f} | {mem} |")


if __name__ == "__main__":
    main()
