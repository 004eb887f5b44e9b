"""protocols/ stays sans-io: bytes in, values out. Nothing in it may reach for the outside."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import protocols

PACKAGE = Path(protocols.__file__).parent
FORBIDDEN = {
    "asyncio",
    "socket",
    "serial",
    "paho",
    "subprocess",
    "threading",
    "fastapi",
    "sqlalchemy",
    "edge",
    "fleet",
}
SOURCES = sorted(
    p for p in PACKAGE.rglob("*.py") if p.name != "check_link.py"
)  # the vector runner reads a file


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_io_imports(path: Path) -> None:
    assert imported_roots(path).isdisjoint(FORBIDDEN), imported_roots(path) & FORBIDDEN


def test_link_codec_needs_nothing_micropython_lacks() -> None:
    # The firmware imports this very file: at most binascii (optional) from the outside.
    assert imported_roots(PACKAGE / "link.py") <= {"binascii"}
