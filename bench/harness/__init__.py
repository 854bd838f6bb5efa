"""Shared pieces of the benchmarks: fresh databases, runner processes, statistics,
machine description and results (JSON + markdown). One module per benchmark lives in
`bench/` and uses these; see bench/README.md."""
