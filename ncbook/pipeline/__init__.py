"""The book pipeline: parameter profiles, the notebook runner, provenance, the book's preparation,
sweeps and the ``ncbook`` command. The library (metrics, theory, models, optimize, experiments)
never imports this package."""
