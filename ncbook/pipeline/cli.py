"""The ``ncbook`` command: run notebooks, sweeps of notebook runs, and their collected results."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

DESCRIPTION = """\
Run the book's notebooks and sweeps of them.

commands:
  run      execute notebooks at a profile's parameters (exploratory with -p)
  sweep    execute the runs of a grid file that have not finished (resumable)
  collect  gather the finished runs of a sweep into one table

examples:
  ncbook run notebooks/00_overview.py                      # smoke profile, strict claims
  ncbook run notebooks/00_overview.py -p steps 300         # exploratory: own results folder
  ncbook run notebooks/21_synthetic_balanced.py --profile full --device cuda
  ncbook sweep sweeps/smoke.yaml --jobs 2
  ncbook collect sweeps/smoke.yaml --out table.csv

`ncbook sweep` exits with 1 when a run failed, 2 when the grid is invalid (nothing ran) and 130 when
interrupted; running the same command again resumes.
"""
EXECUTORS = ("local", "ray")


def _parser() -> argparse.ArgumentParser:
    from ncbook import __version__
    from ncbook.pipeline.run_notebook import parser as run_parser

    parser = argparse.ArgumentParser(prog="ncbook", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ncbook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,sweep,collect}")
    template = run_parser("ncbook run")
    commands.add_parser("run", help="execute notebooks at a profile's parameters", parents=[template],
                        add_help=False, description=template.description, epilog=template.epilog,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    run = commands.add_parser("sweep", help="execute the runs of a grid that have not finished")
    run.add_argument("grid", type=Path, help="a grid file (YAML), e.g. sweeps/smoke.yaml")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="local: a process pool on this machine; ray: a Ray cluster")
    run.add_argument("--jobs", type=int, default=None,
                     help="local executor: runs at once (default: one per visible GPU, else 1)")
    run.add_argument("--out", type=Path, default=None,
                     help="folder for the run folders (default: the grid's `out`, else _sweeps/<name>)")
    run.add_argument("--address", default=None,
                     help="ray executor: 'auto' or a cluster address (default: a local Ray instance)")
    run.add_argument("--retry-failed", action="store_true", help="run the failed runs again")
    run.add_argument("--dry-run", action="store_true", help="list the runs and their status, run nothing")
    gather = commands.add_parser("collect", help="gather the finished runs into one table")
    gather.add_argument("source", type=Path, help="a grid file, or a folder of run folders")
    gather.add_argument("--runs", type=Path, default=None,
                        help="with a grid file: where its run folders are, if `sweep --out` moved them")
    gather.add_argument("--out", type=Path, default=None,
                        help="table.csv or table.parquet (default: <run folders>/table.csv)")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _sweep(args: argparse.Namespace) -> int:
    from ncbook.pipeline import sweep

    grid = sweep.load_grid(args.grid, out=args.out)
    if args.dry_run:
        for run in grid.runs:
            status = sweep.run_status(grid.out / run.key)
            print(f"{status:8s} {run.key}  {run.parameters}")
        return 0
    # A scheduler's SIGTERM stops the workers like Ctrl-C does, instead of orphaning them.
    signal.signal(signal.SIGTERM, _interrupt)
    report = sweep.run_sweep(grid, args.executor, args.jobs, args.address, args.retry_failed)
    print(f"{grid.name}: {report.count('done')} done, {report.count('failed')} failed, "
          f"{report.count('pending')} pending; {len(report.executed)} executed in {report.wall_s:.1f} s "
          f"-> {grid.out}")
    for key, error in report.errors.items():
        print(f"  FAILED {key}: {error}", file=sys.stderr)
    return 1 if report.errors or report.count("pending") else 0


def _collect(args: argparse.Namespace) -> int:
    from ncbook.pipeline import sweep

    if args.source.is_dir():
        folder, table = args.source, sweep.collect(args.source)
    else:
        grid = sweep.load_grid(args.source, out=args.runs)
        folder, table = grid.out, sweep.collect(grid)
    path = sweep.write_table(table, args.out or folder / "table.csv")
    runs = table["run"].nunique() if len(table) else 0
    print(f"{len(table)} rows from {runs} finished runs -> {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        from ncbook.pipeline.run_notebook import main as run_main

        return run_main(argv[1:] if argv is not None else sys.argv[2:], prog="ncbook run")
    try:
        return _sweep(args) if args.command == "sweep" else _collect(args)
    except ValueError as error:
        print(f"ncbook {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ncbook: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
