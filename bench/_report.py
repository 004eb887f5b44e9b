"""What every benchmark prints: machine and date first, then each figure beside its reference.

A throughput figure means little alone: it is printed next to a reference measured on the same
machine in the same run, so a slower or busier machine moves both. Each benchmark module has
`run(quick) -> list[Figure]` for a report generator to collect, and a `main()` that prints.
Benchmarks never assert timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured throughput and its reference, both from the same run.

    `value` and `reference_value` come from the fastest run (least disturbed by the rest of
    the machine); the medians show the spread. `target`, when set, is the goal the figure is
    meant to reach (printed, never asserted).
    """

    name: str
    value: float
    median: float
    unit: str
    reference_name: str
    reference_value: float
    reference_median: float
    target: float | None = None

    @classmethod
    def from_runs(
        cls,
        name: str,
        seconds: Sequence[float],
        reference_name: str,
        reference_seconds: Sequence[float],
        *,
        amount: float,
        unit: str,
        target: float | None = None,
    ) -> Figure:
        """Throughputs of `amount` (frames, messages, MB) done once per run, in each run."""
        best, median = rates(amount, seconds)
        reference_best, reference_median = rates(amount, reference_seconds)
        return cls(name, best, median, unit, reference_name, reference_best, reference_median, target)

    @property
    def ratio(self) -> float:
        """The figure as a multiple of its reference (best runs)."""
        return self.value / self.reference_value


def time_runs(work: Callable[[], object], runs: int) -> list[float]:
    """Wall-clock seconds of `runs` calls of `work`, each started after a full collection."""
    seconds = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return seconds


def rates(amount: float, seconds: Sequence[float]) -> tuple[float, float]:
    """(best, median) of amount per second over the runs."""
    return amount / min(seconds), amount / statistics.median(seconds)


def quick_flag(description: str, argv: Sequence[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts, about a second: a smoke run for CI, not a figure"
    )
    return bool(parser.parse_args(argv).quick)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_header(title: str, details: Sequence[tuple[str, str]], *, quick: bool) -> None:
    rows = [
        ("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("machine", f"{platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs"),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        *details,
    ]
    width = max(len(key) for key, _ in rows)
    print(title + ("  [--quick: a smoke run, not a figure]" if quick else ""))
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print()


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def print_figures(figures: Sequence[Figure]) -> None:
    """Two lines per figure, `best ... median ... unit`, the reference indented below it."""
    rows: list[tuple[str, float, float, str, str]] = []
    for f in figures:
        rows.append((f.name, f.value, f.median, f.unit, ""))
        reference = f"  reference: {f.reference_name}"
        rows.append((reference, f.reference_value, f.reference_median, f.unit, f"{f.ratio:.3g}x"))
    label_width = max(len(label) for label, *_ in rows)
    number_width = max(len(_number(n)) for _, best, median, *_ in rows for n in (best, median))
    for label, best, median, unit, note in rows:
        best_text, median_text = _number(best).rjust(number_width), _number(median).rjust(number_width)
        line = f"{label:<{label_width}}  best {best_text}  median {median_text}  {unit}"
        if note:
            line += f"   (figure is {note} the reference)"
        print(line)
    for f in figures:
        if f.target is not None:
            verdict = "met" if f.value >= f.target else "NOT met"
            print(f"{f.name}: target ≥ {f.target:.0f} {f.unit}, {verdict} by the best run")


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency's p50/p99 and its reference's, both from the same run (lower is faster).

    Not a `Figure`: a Figure is a throughput from the best of several runs; a latency is a
    distribution over many samples of one run, and its ratio reads the other way round.
    """

    name: str
    p50: float
    p99: float
    unit: str
    reference_name: str
    reference_p50: float
    reference_p99: float
    samples: int

    @classmethod
    def from_samples(
        cls, name: str, samples_us: Sequence[int], reference_name: str, reference_us: Sequence[int]
    ) -> Latency:
        """Percentiles in ms of samples given in µs."""
        return cls(
            name,
            percentile(samples_us, 50) / 1000,
            percentile(samples_us, 99) / 1000,
            "ms",
            reference_name,
            percentile(reference_us, 50) / 1000,
            percentile(reference_us, 99) / 1000,
            len(samples_us),
        )

    @property
    def ratio(self) -> float:
        """The figure's p50 as a multiple of its reference's p50."""
        return self.p50 / self.reference_p50 if self.reference_p50 else math.inf


def percentile(samples: Sequence[int], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least pct % of samples at or below it."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def _latency_number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3f}"


def print_latencies(latencies: Sequence[Latency]) -> None:
    """Two lines per latency, `p50 ... p99 ... unit`, the reference indented below it."""
    rows: list[tuple[str, float, float, str, str]] = []
    for f in latencies:
        rows.append((f.name, f.p50, f.p99, f.unit, f"{f.samples} samples"))
        rows.append((f"  reference: {f.reference_name}", f.reference_p50, f.reference_p99, f.unit, ""))
    label_width = max(len(label) for label, *_ in rows)
    number_width = max(len(_latency_number(n)) for _, p50, p99, *_ in rows for n in (p50, p99))
    for label, p50, p99, unit, note in rows:
        line = f"{label:<{label_width}}  p50 {_latency_number(p50).rjust(number_width)}"
        line += f"  p99 {_latency_number(p99).rjust(number_width)}  {unit}"
        print(f"{line}   ({note})" if note else line)
    for f in latencies:
        print(f"{f.name}: p50 is {f.ratio:,.0f}x its reference")
