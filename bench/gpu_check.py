"""GPU check (issue 17): one command, about 8 minutes on one H100/H200, that

1. runs the CUDA tests (every test whose name says ``cuda``; they skip without a GPU),
2. times ``ncbook.metrics`` on CUDA against the CPU (``bench/metrics.py``'s table: CUDA wall time
   after a warm-up, synchronised; the CPU's CPU time, one thread),
3. times one training epoch of each backbone (``ncbook.models.nets.build`` + ``ncbook.train.fit``,
   synthetic 32x32 tensors) on the GPU and on the CPU (all cores),
4. runs notebooks 21 and 22 (smoke profile) on CUDA at width 2048 for depths M = 1 and 3, with
   the init scaled as the notebooks' text says (0.1 sqrt(64 / 2048)),

and writes one markdown report to ``results/gpu/gpu_check.md``. Without CUDA it prints one line
saying so and exits with status 1.

    python bench/gpu_check.py [--out results/gpu]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("21_synthetic_balanced", "22_synthetic_imbalanced")
BACKBONES = ("mlp", "vgg16", "resnet18")
WIDE = 2048  # the width paper A's GPU runs use
TRAIN_SAMPLES = 1024  # synthetic 3x32x32 inputs per epoch (batch 128)


def _run(cmd: list[str], timeout: float) -> tuple[int, float, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NCBOOK_PROGRESS="0")
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        code, out = 124, f"timed out after {timeout:.0f} s\n{err.stdout or ''}"
    return code, time.perf_counter() - start, out


def cuda_tests() -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:randomly", "-k", "cuda", "tests"]
    code, seconds, out = _run(cmd, timeout=150)
    summary = out.strip().splitlines()[-1] if out.strip() else "(no output)"
    return ["## CUDA tests", "", f"`pytest -k cuda tests`: exit {code}, {seconds:.0f} s: {summary}", ""]


def metrics_tables() -> list[str]:
    sys.path.insert(0, str(ROOT / "bench"))
    import metrics as bench  # bench/metrics.py

    lines = ["## ncbook.metrics, CUDA and CPU", ""]
    for device in ("cuda", "cpu"):
        lines += [bench.run_table(repeats=3, quick=device == "cpu", device=device), ""]
    return lines


def _epoch_seconds(arch: str, device: str) -> float:
    from ncbook.data import DataBundle, Split
    from ncbook.models.nets import NetConfig
    from ncbook.train import TrainConfig, fit

    gen = torch.Generator().manual_seed(0)
    split = Split(torch.randn(TRAIN_SAMPLES, 3, 32, 32, generator=gen), torch.arange(TRAIN_SAMPLES) % 10, 10)
    data = DataBundle("synthetic", split, split)
    net = NetConfig(arch=arch, num_classes=10, width=512)
    config = TrainConfig(epochs=1, batch_size=128, lr=1e-3, eval_every=10, checkpoint_every=10)
    start = time.perf_counter()
    fit(data, net, config, device=device, description=f"{arch} on {device}")
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def training_table() -> list[str]:
    lines = [
        f"## One training epoch ({TRAIN_SAMPLES} synthetic 3x32x32 samples, batch 128, with the final "
        "NC evaluation), wall seconds",
        "",
        f"| backbone | CUDA | CPU ({torch.get_num_threads()} threads) | CPU / CUDA |",
        "|---|---|---|---|",
    ]
    for arch in BACKBONES:
        _epoch_seconds(arch, "cuda")  # warm-up: cuDNN autotuning, kernels loaded
        gpu, cpu = _epoch_seconds(arch, "cuda"), _epoch_seconds(arch, "cpu")
        lines.append(f"| {arch} | {gpu:.2f} | {cpu:.2f} | {cpu / gpu:.1f} |")
    return lines + [""]


def notebook_table(out: Path) -> list[str]:
    lines = [
        f"## Notebooks 21 and 22 on CUDA, width {WIDE}, M = 1 and 3 (smoke profile)",
        "",
        "| notebook | exit | wall s | last line |",
        "|---|---|---|---|",
    ]
    init_std = 0.1 * math.sqrt(64 / WIDE)
    for stem in NOTEBOOKS:
        cmd = [sys.executable, "-m", "ncbook.run_notebook", f"notebooks/{stem}.py", "--profile", "smoke"]
        cmd += ["--device", "cuda", "--output-dir", str(out / "notebooks")]
        cmd += [
            "-p",
            "cuda_width",
            str(WIDE),
            "-p",
            "cuda_init_std",
            f"{init_std:.6g}",
            "-p",
            "depths",
            "[1, 3]",
        ]
        code, seconds, text = _run(cmd, timeout=150)
        last = (text.strip().splitlines() or ["(no output)"])[-1].replace("|", "/")[:120]
        lines.append(f"| {stem} | {code} | {seconds:.0f} | {last} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing was run"
        )
        return 1
    from ncbook._io import _atomic_write_text  # after the CUDA check: the no-GPU answer stays quick

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    name = torch.cuda.get_device_name(0)
    report = [
        "# GPU check",
        "",
        f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}, host {platform.node()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
    ]
    for section in (cuda_tests, metrics_tables, training_table, lambda: notebook_table(args.out)):
        report += section()
        _atomic_write_text(
            args.out / "gpu_check.md", "\n".join(report) + "\n"
        )  # kept if a later part crashes
    report.append(f"Total wall time: {time.perf_counter() - start:.0f} s")
    _atomic_write_text(args.out / "gpu_check.md", "\n".join(report) + "\n")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
