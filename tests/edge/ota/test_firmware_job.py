"""A controller-firmware job through OtaNode, in process: the manifest is checked against
`controller.hardware`, the files go to edge.controller.firmware_update (stood in for here: its
own tests drive the simulated controller), whose progress moves the job through restarting and
health-check, and its verdict ends the job."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.config import parse_config
from edge.controller import firmware_update
from edge.ota.node import AgentHooks, OtaNode
from protocols import messages as m
from tests.edge.ota.conftest import Releases
from tests.edge.ota.release_server import ReleaseServer

FILES = {"main.py": b"print('pole')\n", "version.py": b'FIRMWARE_VERSION = "1.1.0"\n'}


def run_job(
    tmp_path: Path,
    key: Path,
    server: ReleaseServer,
    releases: Releases,
    update: Callable[..., None],
    *,
    hardware: str = "rp2040-pico",
    console: str | None = "/dev/ttyACM0",
    bell_call_active: Callable[[], bool] = lambda: False,
    reports: list[m.OtaProgress] | None = None,
) -> list[m.OtaProgress]:
    config = parse_config(
        f"""
[node]
id = "pole-1"
site_id = "site-1"
state_dir = "{tmp_path / "state"}"
[uplink]
host = "localhost"
[controller]
port = "/dev/ttyAMA0"
hardware = "{hardware}"
{f'console = "{console}"' if console else ""}
[ota]
root = "{tmp_path / "root"}"
trusted_keys = ["{key}"]
"""
    )
    built = releases.build("1.1.0", files=FILES, hardware=["rp2040-pico"], component="controller-firmware")
    published = releases.publish(server, built, name="controller-firmware-1.1.0")
    reports = [] if reports is None else reports

    async def main() -> None:
        async def flush() -> None:
            pass

        async def next_hello(timeout_s: float, since: float | None) -> str | None:
            return "1.1.0"

        node = OtaNode(
            config,
            AgentHooks(
                store=reports.append,  # type: ignore[arg-type]
                flush=flush,
                self_test=lambda name: asyncio.sleep(0, {"ok": True}),
                uplink_online=lambda: True,
                controller_up=lambda: True,
                firmware_version=lambda: "1.0.0",
                next_hello=next_hello,
                bell_call_active=bell_call_active,
            ),
            agent_version="1.0.0",
            clock_ms=lambda: 1_764_000_000_000,
        )
        task = asyncio.create_task(node.run())
        node.offer(
            m.OtaOffer(
                ts=1_764_000_000_000,
                campaign_id="fw-1",
                release="1.1.0",
                manifest_url=published.manifest_url,
                manifest_sha256=published.manifest_sha256,
                expires_at=1_764_000_600_000,
            )
        )
        async with asyncio.timeout(30):
            while not reports or reports[-1].state not in ("committed", "failed", "rolled-back"):
                await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    original = firmware_update.update_firmware
    firmware_update.update_firmware = update  # type: ignore[assignment]
    try:
        asyncio.run(main())
    finally:
        firmware_update.update_firmware = original
    return reports


def good_update(console: str, files: list[firmware_update.FirmwareFile], version: str, **kw: Any) -> None:
    assert console == "/dev/ttyACM0"
    assert version == "1.1.0"
    assert {f.path: f.data for f in files} == FILES
    assert all(f.sha256 == hashlib.sha256(f.data).hexdigest() for f in files)
    for state in ("installing", "restarting", "health-check"):
        kw["progress"](state)
    assert kw["first_frame_version"](5.0) == "1.1.0"


def test_a_firmware_release_goes_to_the_controller(
    tmp_path: Path, trusted_key_file: Path, release_server: ReleaseServer, releases: Releases
) -> None:
    reports = run_job(tmp_path, trusted_key_file, release_server, releases, good_update)
    states = [r.state for r in reports if r.state != "downloading"]
    assert states == [
        "notified",
        "downloaded",
        "verified",
        "installing",
        "restarting",
        "health-check",
        "committed",
    ]


def test_a_firmware_that_does_not_come_back_is_rolled_back(
    tmp_path: Path, trusted_key_file: Path, release_server: ReleaseServer, releases: Releases
) -> None:
    def update(console: str, files: list[Any], version: str, **kw: Any) -> None:
        for state in ("installing", "restarting", "health-check"):
            kw["progress"](state)
        raise firmware_update.FirmwareUpdateError("did-not-start", "no HELLO within 30 s", rolled_back=True)

    final = run_job(tmp_path, trusted_key_file, release_server, releases, update)[-1]
    assert (final.state, final.reason) == ("rolled-back", "did-not-start")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"hardware": "esp32"}, "wrong-hardware"), ({"console": None}, "no-controller")],
)
def test_a_firmware_release_this_controller_cannot_take_is_refused(
    tmp_path: Path,
    trusted_key_file: Path,
    release_server: ReleaseServer,
    releases: Releases,
    changes: dict[str, Any],
    reason: str,
) -> None:
    def update(*args: Any, **kw: Any) -> None:
        raise AssertionError("must not be called")

    final = run_job(tmp_path, trusted_key_file, release_server, releases, update, **changes)[-1]
    assert (final.state, final.reason) == ("failed", reason)


def test_a_verified_release_waits_for_the_bell_call_to_end_before_installing(
    tmp_path: Path,
    trusted_key_file: Path,
    release_server: ReleaseServer,
    releases: Releases,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("edge.ota.node.CALL_POLL_S", 0.01)
    reports: list[m.OtaProgress] = []
    seen_while_calling: list[list[str]] = []

    def bell_call_active() -> bool:
        # A call under way for the first five looks; what had been reported by then is kept.
        if len(seen_while_calling) < 5:
            seen_while_calling.append([r.state for r in reports])
            return True
        return False

    def update(console: str, files: list[firmware_update.FirmwareFile], version: str, **kw: Any) -> None:
        good_update(console, files, version, **kw)

    run_job(
        tmp_path,
        trusted_key_file,
        release_server,
        releases,
        update,
        bell_call_active=bell_call_active,
        reports=reports,
    )
    assert len(seen_while_calling) == 5
    assert all("verified" in states and "installing" not in states for states in seen_while_calling)
    assert reports[-1].state == "committed"
