"""docs/protocols.md and docs/schemas/ are generated from protocols/: they must be up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from protocols import link
from protocols.topics import Kind

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_protocol_docs.py"
DOC = ROOT / "docs" / "protocols.md"


def test_generated_docs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        "docs are stale; run `python scripts/gen_protocol_docs.py`\n" + result.stdout + result.stderr
    )


def test_every_kind_and_frame_type_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [f"kind {kind.value}" for kind in Kind if f"### `{kind.value}`" not in text]
    missing += [
        f"frame type {name}" for code, name in link.TYPE_NAMES.items() if f"| `0x{code:02X}` |" not in text
    ]
    missing += [f"frame type {name}" for name in link.TYPE_NAMES.values() if f"`{name}`" not in text]
    assert missing == []
