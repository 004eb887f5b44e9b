"""Runs a benchmark script under the MicroPython unix port installed beside this Python.

The scripts print one `key value` line per figure; `run_script` collects them by key.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MICROPYTHON = Path(sys.executable).parent / "micropython"


@dataclass(frozen=True, slots=True)
class ScriptOutput:
    """What a script printed, by key; a key printed several times keeps every value."""

    fields: dict[str, list[str]]

    def one(self, key: str) -> str:
        return self.fields[key][0]

    def ints(self, key: str) -> list[int]:
        return [int(value) for value in self.fields.get(key, [])]


def version() -> str:
    result = subprocess.run(
        [str(MICROPYTHON), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def run_script(script: Path, *args: str, heap: str) -> ScriptOutput:
    result = subprocess.run(
        [str(MICROPYTHON), "-X", f"heapsize={heap}", str(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} failed:\n{result.stdout}{result.stderr}")
    fields: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        fields.setdefault(key, []).append(value)
    return ScriptOutput(fields)
