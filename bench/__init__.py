"""Benchmarks: each prints its figures beside references measured in the same run.

Run from the repository root with the project's virtualenv, e.g.
`python bench/link_decoder.py [--quick]`; `run(quick)` in each module returns the figures.
"""
