"""Copy the dashboard's third-party browser files from the npm registry into
fleet/web/static/vendor/, as fleet/web/vendor.json lists them (package, version, file), and
record each file's SHA-256 there. CI runs `--check`: the files on disk must match the manifest,
with no network.

    python scripts/vendor_web.py           # fetch (npm pack), copy, record hashes
    python scripts/vendor_web.py --check   # verify only
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "fleet" / "web" / "vendor.json"
VENDOR = ROOT / "fleet" / "web" / "static" / "vendor"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(manifest: dict[str, object]) -> list[str]:
    problems = []
    for entry in manifest["files"]:  # type: ignore[attr-defined]
        path = VENDOR / entry["to"]
        if not path.exists():
            problems.append(f"{path.relative_to(ROOT)} is missing: run scripts/vendor_web.py")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{path.relative_to(ROOT)} differs from {entry['package']}@{entry['version']}")
    return problems


def fetch(manifest: dict[str, object]) -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        packed: dict[str, Path] = {}
        for entry in manifest["files"]:  # type: ignore[attr-defined]
            spec = f"{entry['package']}@{entry['version']}"
            if spec not in packed:
                out = subprocess.run(
                    ["npm", "pack", spec, "--silent", "--pack-destination", work],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()[-1]
                packed[spec] = Path(work) / out
            with tarfile.open(packed[spec]) as tar:
                member = tar.extractfile(f"package/{entry['from']}")
                if member is None:
                    raise SystemExit(f"{spec} has no {entry['from']}")
                (VENDOR / entry["to"]).write_bytes(member.read())
            entry["sha256"] = sha256(VENDOR / entry["to"])
            print(f"{spec} {entry['from']} -> {entry['to']}")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    manifest = json.loads(MANIFEST.read_text())
    if "--check" in sys.argv[1:]:
        problems = check(manifest)
        for problem in problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1 if problems else 0)
    fetch(manifest)


if __name__ == "__main__":
    main()
