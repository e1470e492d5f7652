"""Benchmark of ncbook.metrics against one float32 GEMM X^T X of the same (N, d) data (not a test).

CPU time (``time.process_time``, so load from other processes does not inflate it), torch pinned
to one thread, the median of interleaved repeats. For d = 512 and 2048 and K = 10 and 1000 (N
chosen so that the GEMM takes about half a second): ``NCAccumulator`` fed 128-, 512- and 4096-row
batches (the pass; ``compute`` apart), exact ``nc1``, ``nc_metrics`` (pass + compute), and
``compute()`` alone (a cost independent of N); rhubarbwu/neural-collapse's two-pass accumulators
(``MeanAccumulator`` then ``CovarAccumulator``, 512-row batches) side by side when importable
(never a dependency). Then the peak extra resident memory of the pass, ``nc1`` and
``nc_metrics`` at two N (a fresh subprocess each: peak RSS, reset through /proc/self/clear_refs,
minus the RSS before the call, data included in neither). Targets (issue 18): every pass at
K = 10 <= 1.3x the GEMM, at K = 1000 <= 2x; memory independent of N.

    nice bench/metrics.py [--repeats 3] [--quick]      # OMP_NUM_THREADS=1 is set here
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import ncbook.metrics as ncm  # noqa: E402

BATCHES = (128, 512, 4096)
WIDTHS = {512: 65_536, 2048: 8_192}  # d: N, the GEMM then takes about 0.5 s on one core
CLASSES = (10, 1000)
TARGET = {10: 1.3, 1000: 2.0}  # ratio of a pass to the GEMM (issue 18)
MEMORY_N = (32_768, 131_072)


def make_data(n: int, dim: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian classes around 3 N(0, 1) means, float32, filled in chunks (no large temporary)."""
    gen = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(classes, dim, generator=gen)
    labels = torch.randperm(n, generator=gen) % classes
    x = torch.empty(n, dim)
    for start in range(0, n, 8192):
        rows = slice(start, start + 8192)
        x[rows] = torch.randn(x[rows].shape, generator=gen) + means[labels[rows]]
    return x, labels


def _stream(x: torch.Tensor, y: torch.Tensor, classes: int, batch: int) -> Callable[[], object]:
    def run() -> object:
        acc = ncm.NCAccumulator(classes)
        for start in range(0, len(y), batch):
            acc.update(x[start : start + batch], y[start : start + batch])
        return acc.class_means()  # flushes the last block

    return run


def _rhubarbwu(x: torch.Tensor, y: torch.Tensor, classes: int) -> Callable[[], object] | None:
    if x.is_cuda:
        return None
    try:
        from neural_collapse.accumulate import CovarAccumulator, MeanAccumulator
    except ImportError:
        return None

    def run() -> object:
        mean_acc = MeanAccumulator(classes, x.shape[1], "cpu")
        for start in range(0, len(y), 512):
            mean_acc.accumulate(x[start : start + 512], y[start : start + 512])
        means, _ = mean_acc.compute()
        covar_acc = CovarAccumulator(classes, x.shape[1], "cpu", M=means)
        for start in range(0, len(y), 512):
            covar_acc.accumulate(x[start : start + 512], y[start : start + 512], means)
        return covar_acc.totals

    return run


def operations(x: torch.Tensor, y: torch.Tensor, classes: int) -> dict[str, Callable[[], object]]:
    filled = ncm.NCAccumulator(classes)
    filled.update(x, y)
    filled.class_means()
    ops: dict[str, Callable[[], object]] = {"X.T @ X (float32 GEMM)": lambda: x.T @ x}
    for batch in BATCHES:
        ops[f"NCAccumulator pass, {batch}-row batches"] = _stream(x, y, classes, batch)
    ops["nc1 (exact, float64)"] = lambda: ncm.nc1(x, y, classes)
    ops["nc_metrics (pass + compute)"] = lambda: ncm.nc_metrics(x, y, classes)
    ops["compute() alone (independent of N)"] = filled.compute
    other = _rhubarbwu(x, y, classes)
    if other is not None:
        ops["rhubarbwu Mean + Covar accumulators, 512-row"] = other
    return ops


def time_ops(ops: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(repeats):
        for name, call in ops.items():
            start = time.process_time()
            call()
            times[name].append(time.process_time() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return float(line.split()[1]) / 1024  # MB
    raise RuntimeError(f"{field} not in /proc/self/status")


def probe_memory(op: str, n: int, dim: int, classes: int) -> float:
    """Peak extra resident memory (MB) of one call of ``op`` in this (fresh) process."""
    x, y = make_data(n, dim, classes)
    call = {
        "pass": _stream(x, y, classes, 512),
        "nc1": lambda: ncm.nc1(x, y, classes),
        "nc_metrics": lambda: ncm.nc_metrics(x, y, classes),
    }[op]
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    call()
    return _status("VmHWM") - before


def memory_table(dim: int, classes: int) -> list[str]:
    # every large block mmapped and unmapped on free, so that freed memory is not reused unseen
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536")
    lines = [f"| peak extra RSS, d={dim}, K={classes} | " + " | ".join(f"N={n}" for n in MEMORY_N) + " |"]
    lines.append("|---|" + "---|" * len(MEMORY_N))
    for op in ("pass", "nc1", "nc_metrics"):
        cells = []
        for n in MEMORY_N:
            cmd = [sys.executable, __file__, "--probe", op, "--n", str(n), "--dim", str(dim)]
            cmd += ["--classes", str(classes)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            cells.append(f"{float(out.stdout.split()[-1]):.1f} MB")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="d = 512, K = 10 only, no memory probes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (wall time, synchronised)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--classes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.probe:
        print(probe_memory(args.probe, args.n, args.dim, args.classes))
        return
    print(run_table(args.repeats, args.quick, args.device))
    if not args.quick and args.device == "cpu":
        print()
        print("\n".join(memory_table(512, 10)))
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}")


def run_table(repeats: int, quick: bool, device: str = "cpu") -> str:
    """The markdown table of every configuration (``device="cuda"``: wall time, synchronised)."""
    configs = [(512, 10)] if quick else [(d, k) for d in WIDTHS for k in CLASSES]
    lines = [
        f"ncbook.metrics, float32 features, {device}, 1 thread, median of {repeats} interleaved repeats",
        "",
        "| d | K | N | operation | seconds | / GEMM | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for dim, classes in configs:
        x, y = make_data(WIDTHS[dim], dim, classes)
        ops = operations(x.to(device), y.to(device), classes)
        if device != "cpu":
            ops = {name: _synchronised(call) for name, call in ops.items()}
        medians = (time_ops if device == "cpu" else time_ops_wall)(ops, repeats)
        gemm = medians["X.T @ X (float32 GEMM)"]
        for name, seconds in medians.items():
            target = ""
            if name.startswith("NCAccumulator pass"):
                ok = seconds / gemm <= TARGET[classes]
                target = f"<= {TARGET[classes]} {'met' if ok else 'MISSED'}"
            cells = (dim, classes, WIDTHS[dim], name, f"{seconds:.3f}", f"{seconds / gemm:.2f}", target)
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def _synchronised(call: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        out = call()
        torch.cuda.synchronize()
        return out

    return run


def time_ops_wall(ops: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Wall time (for a GPU, where the host's CPU time says nothing), after one warm-up call each."""
    for call in ops.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(repeats):
        for name, call in ops.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


if __name__ == "__main__":
    main()
