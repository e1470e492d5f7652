"""Benchmark: the authors' synthetic recipe versus float64 L-BFGS on the deep linear UFM (not a test).

Problem (paper A, Section 4, ../shared/theory/paper-a.md): K = 4 balanced classes of n = 100,
width 64, lambda_W = lambda_H = 5e-4, features and weights ~ N(0, 0.1^2), float64 on one CPU
thread. The recipe is full-batch SGD with lr 0.1 and momentum 0.9 (the authors run 30,000 steps);
ours is L-BFGS (strong-Wolfe line search, history 50) from the same initial point.

For each setting the table gives the wall time until the objective is within 1e-8 (relative) of
the closed-form global minimum (`ncbook.theory.mse_minimizer`), the steps (SGD) or objective
evaluations (L-BFGS) it took, and the speed-up. Both loops time only the optimisation: the loss
each SGD step computes anyway is the one compared; L-BFGS is checked after every outer step of
`INNER` evaluations, which can only delay its stop. L-BFGS takes well under a second, so its time
is the median of `REPEATS` runs from the same initial point (after one warm-up run), which keeps
load from other processes from deciding the ratio; SGD runs once.

    OMP_NUM_THREADS=1 .venv/bin/python bench/ufm.py [--max-steps 30000]
"""

from __future__ import annotations

import argparse
import time

import torch

import ncbook as nc

SETTINGS = [  # (depth M, last-layer bias)
    (1, False),
    (1, True),
    (3, False),
    (6, False),
]
INNER = 10  # L-BFGS evaluations between checks
REPEATS = 3  # L-BFGS timings per setting (median)


def sgd_time(model: nc.models.DeepLinearUFM, target: float, tol: float, max_steps: int) -> tuple[float, int]:
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    began = time.perf_counter()
    for step in range(max_steps):
        optimiser.zero_grad(set_to_none=True)
        loss = model.objective()
        if float(loss.detach()) <= target * (1 + tol):
            return time.perf_counter() - began, step
        loss.backward()
        optimiser.step()
    return float("nan"), max_steps


def lbfgs_time(
    model: nc.models.DeepLinearUFM, target: float, tol: float, max_evals: int
) -> tuple[float, int]:
    params = model.parameters()
    optimiser = torch.optim.LBFGS(
        params, lr=1.0, max_iter=INNER, history_size=50, line_search_fn="strong_wolfe",
        tolerance_grad=0.0, tolerance_change=0.0,
    )
    evals = 0

    def closure() -> torch.Tensor:
        nonlocal evals
        evals += 1
        optimiser.zero_grad(set_to_none=True)
        loss = model.objective()
        loss.backward()
        return loss

    began = time.perf_counter()
    while evals < max_evals:
        optimiser.step(closure)
        with torch.no_grad():
            if float(model.objective()) <= target * (1 + tol):
                return time.perf_counter() - began, evals
    return float("nan"), evals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=30_000, help="SGD step cap (authors: 30000)")
    parser.add_argument("--tol", type=float, default=1e-8, help="relative gap to the closed form")
    parser.add_argument("--seed", type=int, default=2, help="the authors' default seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    counts, width, lam = [100] * 4, 64, 5e-4
    warm = nc.models.make_deep_linear_ufm(nc.models.UFMSpec([5, 5], 1, 4, lambda_W=lam, lambda_H=lam))
    lbfgs_time(warm, 0.0, 0.0, 50)  # pay torch's one-off optimiser import and first-call costs here

    print(f"K=4, n=100, width {width}, lambda {lam}, float64, 1 thread, target rel. gap {args.tol:g}\n")
    print("| M | bias | f* (closed form) | SGD: time | SGD steps | L-BFGS: time | L-BFGS evals | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for depth, bias in SETTINGS:
        target = nc.theory.mse_minimizer(counts, depth, lambda_W=lam, lambda_H=lam, bias=bias).loss
        spec = nc.models.UFMSpec(counts, depth, width, lambda_W=lam, lambda_H=lam, bias=bias)
        fresh = [nc.models.make_deep_linear_ufm(spec, init_std=0.1, seed=args.seed)
                 for _ in range(REPEATS + 1)]
        times = {"sgd": sgd_time(fresh[0], target, args.tol, args.max_steps)}
        runs = sorted(lbfgs_time(model, target, args.tol, 20_000) for model in fresh[1:])
        times["lbfgs"] = runs[REPEATS // 2]
        (t_sgd, n_sgd), (t_lb, n_lb) = times["sgd"], times["lbfgs"]
        sgd_cell = f"{t_sgd:.2f} s" if t_sgd == t_sgd else f"> cap ({n_sgd} steps)"
        print(
            f"| {depth} | {'yes' if bias else 'no'} | {target:.10g} | {sgd_cell} | {n_sgd} | "
            f"{t_lb:.3f} s | {n_lb} | {t_sgd / t_lb:.0f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
