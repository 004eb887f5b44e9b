"""`bench/report.py` runs the benchmarks and writes the performance report; every benchmark of
bench/ is in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.report import BENCHMARKS

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_every_benchmark_script_is_in_the_report() -> None:
    # Modules starting with "_" are helpers; *_mpy.py run on MicroPython under another script.
    scripts = {
        p.stem
        for p in BENCH.glob("*.py")
        if not p.name.startswith("_") and not p.stem.endswith("_mpy") and p.stem != "report"
    }
    assert scripts == {name for name, _ in BENCHMARKS}


def test_a_quick_report_holds_each_benchmark_output_with_its_references(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "report.py"),
            "--quick",
            "--only",
            "payload_decode",
            "ota_delta",
            "--out",
            str(out),
        ],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = out.read_text()
    assert "--quick: a smoke run, **not figures**" in report
    assert re.search(r"^- machine: .+ CPUs$", report, re.MULTILINE)
    assert re.search(r"^- commit: \S+", report, re.MULTILINE)
    assert re.findall(r"^## (\S+)$", report, re.MULTILINE) == ["payload_decode", "ota_delta"]
    assert re.search(
        r"^\| \[payload_decode\]\(#payload_decode\) \| .+ \| \d+ s \| ok \|$", report, re.MULTILINE
    )
    assert report.count("  reference: ") >= 3  # each figure's reference line, verbatim


def test_a_quick_run_may_not_overwrite_the_real_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--quick"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "give --out" in result.stderr


def test_an_unknown_benchmark_is_named() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--only", "warp_drive", "--out", "/dev/null"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no benchmark warp_drive" in result.stderr


def test_a_partial_run_keeps_the_other_benchmarks_sections(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"

    def report(*names: str) -> str:
        result = subprocess.run(
            [sys.executable, str(BENCH / "report.py"), "--quick", "--only", *names, "--out", str(out)],
            cwd=BENCH.parent,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return out.read_text()

    first = report("ota_delta", "payload_decode")
    kept = first[first.index("## ota_delta") :].strip()
    second = report("payload_decode")
    # In the benchmarks' order, each once; ota_delta's section exactly as the first run wrote it.
    assert re.findall(r"^## (\S+)$", second, re.MULTILINE) == ["payload_decode", "ota_delta"]
    assert second.rstrip().endswith(kept)
    assert len(re.findall(r"^\| \[\w+\]", second, re.MULTILINE)) == 2
    assert re.search(
        r"^- date: .+ \(payload_decode; the others as their sections say\)$", second, re.MULTILINE
    )
