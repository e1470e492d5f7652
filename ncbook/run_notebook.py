"""``python -m ncbook.run_notebook``: the entry point kept at its old address; the runner lives in
:mod:`ncbook.pipeline.run_notebook`."""

from ncbook.pipeline.run_notebook import main

if __name__ == "__main__":
    raise SystemExit(main())
