"""The top floor: run folders (a run's config, weights and results), the protocols of ``selfsup eval``,
grids of runs, the demo, reports and pictures."""
