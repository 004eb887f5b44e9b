"""OTA delta size: how many bytes a node downloads for a typical edge-agent release with a
bsdiff4 delta, against the full artifact (the reference) and the full artifact gzip'd at -9
(what an update without deltas would at best send). Also how fast a node applies the delta,
beside hashing the artifact it produces (a node does both for every delta update).

The two releases are two commits of this repository, packaged exactly as `watchpost ota build`
packages them: a real release's worth of change, not a synthetic one. Default: the commit ten
before HEAD against the working tree.

    python bench/ota_delta.py [--quick] [--base REV]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import bsdiff4

from bench._report import Figure, print_figures, print_header, time_runs
from watchpost.ota import build

REPO = Path(__file__).resolve().parents[1]


def tree_at(revision: str, into: Path) -> Path | None:
    """The node packages as of `revision` (git archive), or None without git history."""
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", revision, *build.EDGE_PACKAGES],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def describe(revision: str) -> str:
    try:
        return subprocess.run(
            ["git", "log", "-1", "--format=%h %s", revision],
            cwd=REPO,
            capture_output=True,
            check=True,
            text=True,
        ).stdout.strip()[:72]
    except (OSError, subprocess.CalledProcessError):
        return revision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timing runs: a smoke run for CI")
    parser.add_argument("--base", default="HEAD~10", help="git revision of the release installed on the node")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else 5

    with tempfile.TemporaryDirectory() as scratch:
        base_root = tree_at(args.base, Path(scratch) / "base")
        if base_root is not None:
            base_files = build.package_files(base_root, build.EDGE_PACKAGES)
            base_label = describe(args.base)
        else:
            # No history (an exported tree): the base is this tree with its largest module
            # edited, which understates a real release's change.
            base_files = build.edge_agent_files("1.0.0")
            largest = max(base_files, key=lambda path: len(base_files[path]))
            base_files[largest] = base_files[largest].replace(b"def ", b"def  ", 20)
            base_label = f"this tree with {largest} edited (no git history here)"
        new_files = build.edge_agent_files("1.1.0")
        base_artifact = build.pack(base_files)
        new_artifact = build.pack(new_files)
        changed = sorted(p for p in new_files if base_files.get(p) != new_files[p])
        added = [p for p in changed if p not in base_files]

        delta = build.make_delta(base_artifact, new_artifact)
        full_gzip = gzip.compress(new_artifact, compresslevel=9, mtime=0)
        assert bsdiff4.patch(base_artifact, delta) == new_artifact  # the delta is right before it is measured

        print_header(
            "OTA delta: an edge-agent release as a bsdiff4 delta against its full artifact",
            [
                ("base release", base_label),
                ("new release", "the working tree"),
                ("files", f"{len(new_files)} in the release, {len(changed)} changed ({len(added)} new)"),
            ],
            quick=args.quick,
        )
        width = 34
        print(
            f"{'download with the delta (bsdiff4)':<{width}}  {len(delta):>10,} bytes"
            f"   ({len(delta) / len(new_artifact):.1%} of the full artifact)"
        )
        print(f"{'  reference: full artifact (tar)':<{width}}  {len(new_artifact):>10,} bytes")
        print(
            f"{'  reference: full artifact, gzip -9':<{width}}  {len(full_gzip):>10,} bytes"
            f"   (delta is {len(delta) / len(full_gzip):.1%} of it)"
        )
        print()

        megabytes = len(new_artifact) / 1e6
        patching = time_runs(lambda: bsdiff4.patch(base_artifact, delta), runs)
        hashing = time_runs(lambda: hashlib.sha256(new_artifact).hexdigest(), runs)
        print_figures(
            [
                Figure.from_runs(
                    "applying the delta (bsdiff4.patch), output",
                    patching,
                    "SHA-256 of the same artifact",
                    hashing,
                    amount=megabytes,
                    unit="MB/s",
                )
            ]
        )


if __name__ == "__main__":
    main(sys.argv[1:])
