"""Every benchmark of the project in one run, written to docs/performance.md: each benchmark's
own output (its figures, each beside the reference it measured in the same run), the machine,
the date and the commit.

    python bench/report.py                 # full figures: docs/performance.md (tens of minutes)
    python bench/report.py --quick --out build/performance-quick.md   # do they still run?
    python bench/report.py --only fleet_ingest ota_campaign            # some of them, again

With --only, the other benchmarks' sections of the existing report stay as they were; each
section names the date and commit of its own run. Each benchmark runs as its own process
(`python bench/<name>.py`), one after another, so none measures beside another. A benchmark
that fails is reported as failed, with its error, and the run goes on; the exit status is
then 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench._report import cpu_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "performance.md"

# In the order data flows: pole controller -> serial link -> edge node -> broker -> fleet ->
# screens -> updates going back out.
BENCHMARKS: list[tuple[str, str]] = [
    ("firmware", "the pole controller: bell press to EVENT frame, and link decoding, on MicroPython"),
    ("link_decoder", "the serial link codec on CPython and on MicroPython"),
    ("payload_decode", "MQTT payload decoding against the contract"),
    ("outbox_append", "the edge node's durable outbox: appends and bytes per record"),
    ("edge_uplink", "the edge uplink: backlog replay, and bell latency while a backlog drains"),
    ("edge_rss", "the edge agent's memory on a Pi-sized budget"),
    ("fleet_ingest", "fleet ingest of node telemetry through a real broker"),
    ("fleet_api", "node death to fault in the API; listing the whole fleet"),
    ("fleet_scale", "100,000 nodes through a few connections: births, telemetry, deaths to faults"),
    ("dashboard", "the control-centre dashboard's first paint at fleet size"),
    ("alarm_screen", "bell press to the alarm banner on the operator's screen"),
    ("ota_delta", "an edge-agent release as a delta against its full artifact"),
    ("ota_campaign", "an OTA campaign to 1,500 poles per wave plan; artifact serving"),
]


@dataclass(frozen=True)
class Run:
    name: str
    what: str
    seconds: float
    returncode: int
    output: str
    errors: str


def run_one(name: str, what: str, *, quick: bool) -> Run:
    command = [sys.executable, str(REPO / "bench" / f"{name}.py"), *(["--quick"] if quick else [])]
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    return Run(name, what, time.monotonic() - started, result.returncode, result.stdout, result.stderr)


def commit() -> str:
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"
    return described.stdout.strip()


def table_row(run: Run) -> str:
    status = "ok" if run.returncode == 0 else f"**failed** (exit {run.returncode})"
    return f"| [{run.name}](#{run.name}) | {run.what} | {run.seconds:.0f} s | {status} |"


def section(run: Run, *, when: str, at: str) -> str:
    lines = [f"## {run.name}", "", f"{run.what} (`bench/{run.name}.py`, run {when} at {at}).", "", "```text"]
    lines += run.output.rstrip().splitlines() or ["(no output)"]
    lines.append("```")
    if run.returncode != 0:
        tail = run.errors.rstrip().splitlines()[-30:]
        lines += ["", f"Failed with exit status {run.returncode}; the end of its stderr:", "", "```text"]
        lines += tail or ["(nothing)"]
        lines.append("```")
    return "\n".join(lines)


def earlier(report: str) -> tuple[dict[str, str], dict[str, str]]:
    """The table rows and sections of an earlier report, by benchmark name."""
    rows = {match[1]: match[0] for match in re.finditer(r"^\| \[(\w+)\]\(#\w+\) \|.*$", report, re.MULTILINE)}
    sections = {}
    for part in re.split(r"^(?=## )", report, flags=re.MULTILINE)[1:]:
        name = part.split("\n", 1)[0].removeprefix("## ").strip()
        sections[name] = part.rstrip()
    return rows, sections


def render(runs: list[Run], *, quick: bool, started: dt.datetime, keep: str = "") -> str:
    """The report of `runs`; with `keep` (an earlier report), its other benchmarks stay as they were."""
    when, at = started.strftime("%Y-%m-%d %H:%M UTC"), commit()
    rows, sections = earlier(keep) if keep else ({}, {})
    for run in runs:
        rows[run.name] = table_row(run)
        sections[run.name] = section(run, when=when, at=at)
    order = [name for name, _ in BENCHMARKS if name in rows]
    rerun = [run.name for run in runs]
    lines = [
        "# Performance",
        "",
        "Generated by `python bench/report.py`"
        + (" --quick: a smoke run, **not figures**" if quick else "")
        + ". Do not edit by hand: run it again.",
        "",
        f"- date: {when}" + (f" ({', '.join(rerun)}; the others as their sections say)" if keep else ""),
        f"- machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- commit: {at}",
        "",
        "Each benchmark prints its figures beside a reference measured on the same machine in the",
        "same run (a slower or busier machine moves both); `best` is the least disturbed run,",
        "`median` shows the spread. What each one measures, and why that reference, is at the top",
        "of its file in `bench/`.",
        "",
        "| benchmark | what it measures | took | |",
        "|---|---|---|---|",
        *(rows[name] for name in order),
    ]
    for name in order:
        lines += ["", sections[name]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's smoke run: do they still run?")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="these benchmarks only (names as in bench/)"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"where to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    known = dict(BENCHMARKS)
    names = args.only or [name for name, _ in BENCHMARKS]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; there are: {', '.join(known)}")
    if args.quick and args.out is None:
        parser.error("--quick makes no figures: give --out, so docs/performance.md keeps real ones")
    out: Path = args.out or DEFAULT_OUT
    started = dt.datetime.now(dt.UTC)
    runs = []
    for name in names:
        print(f"running {name} ...", flush=True)
        run = run_one(name, known[name], quick=args.quick)
        print(f"  {'ok' if run.returncode == 0 else 'FAILED'} in {run.seconds:.0f} s", flush=True)
        runs.append(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Some benchmarks of a full report: the others' figures stay as they were.
    keep = out.read_text(encoding="utf-8") if args.only and out.exists() else ""
    out.write_text(render(runs, quick=args.quick, started=started, keep=keep), encoding="utf-8")
    print(f"wrote {out}")
    return 0 if all(run.returncode == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
