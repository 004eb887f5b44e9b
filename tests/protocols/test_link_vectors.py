"""The golden vectors in protocols/vectors/link.json, on CPython and on real MicroPython."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocols import link
from protocols.vectors import check_link

VECTORS = Path(link.__file__).parent / "vectors" / "link.json"


def vector_count() -> int:
    data = json.loads(VECTORS.read_text())
    return len(data["crc16"]) + len(data["cobs"]) + len(data["frames"])


def test_vectors_pass_on_cpython() -> None:
    count, failures = check_link.run(link, json.loads(VECTORS.read_text()))
    assert failures == []
    assert count == vector_count()


@pytest.mark.micropython
def test_vectors_pass_on_the_micropython_unix_port(micropython: Path) -> None:
    # The very file the firmware deploys, imported by the real MicroPython interpreter.
    result = subprocess.run(
        [str(micropython), str(VECTORS.parent / "check_link.py"), str(VECTORS.parent.parent), str(VECTORS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{vector_count()} passed, 0 failed"


@pytest.mark.micropython
def test_the_interpreter_is_really_micropython(micropython: Path) -> None:
    result = subprocess.run(
        [str(micropython), "-c", "import sys; print(sys.implementation.name)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "micropython"


def test_vectors_file_is_what_the_generator_writes() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "make_link_vectors.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
