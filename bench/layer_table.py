"""Benchmark of the per-layer metrics that paper A's synthetic runs log (not a test).

What one logged step of ``ncbook.experiments.synthetic.run`` costs, against one forward pass of
the deep linear UFM (the objective) and one full SGD step (objective, backward, update): the layer
table with every metric (what it computed for each logged step before ``keys=``), the same table
restricted to the keys that ``synthetic_tables.measure`` records, and ``measure`` itself (those
keys and the per-class rows). K = 4 balanced classes of n = 100 as in the authors' recipe, float64,
with a bias and its closed-form reference (so the ``*_pred`` keys are in), depth M = 1, 3, 9 and
width d = 32 (the notebooks' CPU width) and 64 (the authors'). CPU time
(``time.process_time``), torch pinned to one thread, the median of interleaved repeats.

    nice bench/layer_table.py [--repeats 15]      # OMP_NUM_THREADS=1 is set here
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402
from metrics import time_ops  # noqa: E402  (bench/metrics.py: CPU time, median of interleaved repeats)

from ncbook.experiments.synthetic_tables import LAYER_METRICS, measure  # noqa: E402
from ncbook.metrics.layerwise import PRED_KEYS  # noqa: E402
from ncbook.models import make_deep_linear_ufm  # noqa: E402
from ncbook.spec import UFMSpec  # noqa: E402
from ncbook.theory import mse_minimizer  # noqa: E402

COUNTS = [100, 100, 100, 100]
DEPTHS = (1, 3, 9)
WIDTHS = (32, 64)
DECAY = 5e-4  # lambda_W = lambda_H, the authors' value
FORWARD = "forward pass (objective)"
FULL = "layer_table, every metric (before keys=)"
MONITORED = "layer_table, measure's keys"


def operations(depth: int, width: int) -> dict[str, Callable[[], object]]:
    spec = UFMSpec(COUNTS, depth, width, lambda_W=DECAY, lambda_H=DECAY, bias=True)
    model = make_deep_linear_ufm(spec, init_std=0.1, seed=2)
    reference = mse_minimizer(COUNTS, depth, lambda_W=DECAY, lambda_H=DECAY, bias=True, widths=spec.widths)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)  # tiny steps: the point stays put

    def sgd_step() -> object:
        optimizer.zero_grad()
        loss = model.objective()
        loss.backward()
        optimizer.step()
        return loss

    keys = LAYER_METRICS + PRED_KEYS
    return {
        FORWARD: model.objective,
        "SGD step (objective, backward, update)": sgd_step,
        FULL: lambda: model.layer_table(reference),
        MONITORED: lambda: model.layer_table(reference, keys),
        "measure (measure's keys + per-class rows)": lambda: measure(model, reference),
    }


def run_table(repeats: int) -> str:
    lines = [
        f"per-layer metrics of a synthetic run, K = {len(COUNTS)}, n_k = {COUNTS[0]}, float64, cpu, "
        f"1 thread, median of {repeats} interleaved repeats",
        "",
        "| M | d | operation | ms | / forward |",
        "|---|---|---|---|---|",
    ]
    speedups = []
    for depth in DEPTHS:
        for width in WIDTHS:
            ops = operations(depth, width)
            for call in ops.values():  # warm-up: first calls pay for lazy imports and allocations
                call()
            medians = time_ops(ops, repeats)
            forward = medians[FORWARD]
            for name, seconds in medians.items():
                cells = (depth, width, name, f"{1e3 * seconds:.2f}", f"{seconds / forward:.1f}")
                lines.append("| " + " | ".join(map(str, cells)) + " |")
            speedups.append(f"M={depth}, d={width}: {medians[FULL] / medians[MONITORED]:.2f}x")
    lines += ["", "layer_table, every metric / measure's keys: " + ", ".join(speedups)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(run_table(args.repeats))
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
