"""OTA on a rig, as the city does it: releases built by the real build tool
(watchpost.ota.build) and signed with the lab's release key (`Lab.release_key`, which the lab's
fleet trusts), uploaded through the fleet's API, and campaigns started, read and stopped there.
And what a node needs to take them: its `[ota]` section pinning the lab's key, and for the edge
agent the boot selector as the unit's ExecStart over release 1.0.0 provisioned as a factory
leaves it (`watchpost ota node provision`). tests/ota/ does the same without a rig;
hil_tests/test_ota.py holds the scenarios.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from hil_tests.rig.lab import ApiRefused, Fleet, Lab
from hil_tests.rig.rig import Rig
from watchpost.ota.build import (
    BuiltRelease,
    Component,
    build_release,
    controller_firmware_files,
    edge_agent_files,
)
from watchpost.ota.keys import load_private

WATCHPOST: Final = Path(sys.executable).parent / "watchpost"
BASE_RELEASE: Final = "1.0.0"  # the edge agent's release on the pole when the scenario starts
BASE_FIRMWARE: Final = "0.1.0"  # firmware/version.py: what `watchpost firmware deploy` lays down
NODE_HARDWARE: Final = "raspberrypi"  # node.hardware's default
CONTROLLER_HARDWARE: Final = "rp2040-pico"  # controller.hardware's default
# Long enough for a good release to connect and pass its self-tests on a loaded machine; a
# release that cannot pass costs this much of the scenario's time.
HEALTH_DEADLINE_S: Final = 15.0


class ReleaseDesk:
    """The release engineer's side: builds signed releases into `<workdir>/dist` (one folder
    each, so a later release's delta finds its base) and uploads them to the lab's fleet as
    the admin."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.fleet = lab.fleet
        self.key = load_private(lab.release_key)
        self.out = workdir / "dist"

    def agent(
        self, release: str, *, files: Mapping[str, bytes] | None = None, base: str | None = None
    ) -> BuiltRelease:
        """An edge-agent release from this source tree (`files` replacing it), as a delta from
        `base` (built before, into this desk's folder) when given."""
        return self._build(
            "edge-agent",
            release,
            files if files is not None else edge_agent_files(release),
            hardware=NODE_HARDWARE,
            base=(base, self.out / base / f"edge-agent-{base}.tar") if base else None,
        )

    def firmware(self, release: str, *, files: Mapping[str, bytes] | None = None) -> BuiltRelease:
        """A controller-firmware release: one slot's files from firmware/ (or `files`)."""
        return self._build(
            "controller-firmware",
            release,
            files if files is not None else controller_firmware_files(release),
            hardware=CONTROLLER_HARDWARE,
        )

    def upload(self, built: BuiltRelease) -> dict[str, Any]:
        """`POST /api/v1/ota/releases` (multipart), as the admin; the fleet's release."""
        parts = {"manifest": built.manifest_path.read_bytes(), "artifact": built.artifact_path.read_bytes()}
        if built.delta_path is not None:
            parts["delta"] = built.delta_path.read_bytes()
        body, content_type = _multipart(parts)
        request = urllib.request.Request(
            f"{self.fleet.url}/api/v1/ota/releases",
            method="POST",
            data=body,
            headers={"Authorization": f"Bearer {self.fleet.tokens['admin']}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                release: dict[str, Any] = json.loads(response.read())
                return release
        except urllib.error.HTTPError as error:
            raise ApiRefused(f"upload of {built.artifact_path.name}: {error.code} {error.read()!r}") from None

    def _build(
        self,
        component: Component,
        release: str,
        files: Mapping[str, bytes],
        *,
        hardware: str,
        base: tuple[str, Path] | None = None,
    ) -> BuiltRelease:
        return build_release(
            component=component,
            release=release,
            hardware=[hardware],
            files=files,
            keys=[self.key],
            out_dir=self.out / release,
            base=base,
        )


# -- campaigns, as the control centre runs them (the operator's token)


def start_campaign(fleet: Fleet, release_id: str, node_id: str, *, version: str) -> dict[str, Any]:
    """A campaign of `release_id` for the one node, while it runs `version`: one wave, paused
    by the abort rule at its first failure (the defaults' `abort_failure_rate` of 0.1)."""
    created: dict[str, Any] = fleet.post(
        "/ota/campaigns",
        {
            "release_id": release_id,
            "target": {"node_ids": [node_id], "versions": [version]},
            "waves": [{"percent": 100}],
            "note": f"hil: {release_id}",
        },
    )
    return created


def campaign_settled(fleet: Fleet, campaign_id: str) -> dict[str, Any]:
    """The campaign once it no longer runs (completed, paused or cancelled)."""
    settled: dict[str, Any] = fleet.until(
        f"/ota/campaigns/{campaign_id}", lambda c: c if c["state"] != "running" else None
    )
    return settled


def campaign_node(fleet: Fleet, campaign_id: str, node_id: str) -> dict[str, Any]:
    """The node's row in the campaign: its OTA state, reason, detail, offers."""
    rows = fleet.get(f"/ota/campaigns/{campaign_id}/nodes")["items"]
    (row,) = (r for r in rows if r["node_id"] == node_id)
    found: dict[str, Any] = row
    return found


def progress(rig: Rig, campaign_id: str) -> list[tuple[str, str]]:
    """The node's `OtaProgress` reports for the campaign, in arrival order: (state, reason),
    a repeat (at least once on the wire) told once, download progress left out."""
    reports = [s.json() for s in rig.sent("ota", lambda body: body["campaign_id"] == campaign_id)]
    said = [(r["state"], r.get("reason") or "") for r in reports if r["state"] != "downloading"]
    return list(dict.fromkeys(said))


def controller_starts(rig: Rig) -> list[str]:
    """The controller's starts as the node reports them: events naming its firmware."""
    return [e["detail"] for e in (s.json() for s in rig.sent("event")) if e["category"] == "controller"]


def controller_firmware(rig: Rig) -> str:
    """The controller's firmware in a birth the fleet asked the node for (a firmware update
    makes no birth by itself), once the fleet shows it too."""
    before = len(rig.sent("birth"))
    rig.lab.fleet.post(f"/nodes/{rig.node_id}/commands", {"name": "rebirth"})
    birth = rig.wait_sent("birth", count=before + 1)[before].json()
    version: str = birth["controller"]["firmware_version"]
    rig.lab.fleet.until(f"/nodes/{rig.node_id}", lambda n: n["controller_firmware"] == version)
    return version


# -- the node's side (node_config functions: they run before the agent starts)


def edge_agent_updates(rig: Rig, workdir: Path) -> dict[str, dict[str, Any]]:
    """The pole as deploy/systemd/watchpost-edge.service runs it: release 1.0.0 (built and
    signed on the desk) provisioned under `ota.root` and committed, and the boot selector,
    from the committed release, as the unit's ExecStart."""
    root = _ota_root(workdir)
    base = ReleaseDesk(rig.lab, workdir).agent(BASE_RELEASE)
    provision(root, base, rig.lab.release_pub)
    rig.node.exec_start = [  # type: ignore[attr-defined]
        sys.executable, "-P", "-m", "edge.ota.boot", "--root", str(root), "--", "--config", "{config}",
    ]  # fmt: skip
    rig.node.env_extra["PYTHONPATH"] = str(root / "committed")  # type: ignore[attr-defined]
    return {
        "ota": {
            "enabled": True,
            "root": str(root),
            "trusted_keys": [str(rig.lab.release_pub)],
            "min_release": BASE_RELEASE,
            "health_deadline_s": HEALTH_DEADLINE_S,
            "max_trial_boots": 2,
        }
    }


def controller_firmware_updates(rig: Rig, workdir: Path) -> dict[str, dict[str, Any]]:
    """The agent with the controller's console (the Pico's USB on a pole), through which it
    writes a firmware release into the idle slot, and `[ota]` pinning the lab's key. A
    firmware job never restarts the agent: it runs as `watchpost edge run`."""
    console: Path = rig.controller.state_dir / "console"  # type: ignore[attr-defined]
    return {
        "controller": {"console": str(console), "hardware": CONTROLLER_HARDWARE},
        "ota": {"enabled": True, "root": str(_ota_root(workdir)), "trusted_keys": [str(rig.lab.release_pub)]},
    }


def provision(root: Path, built: BuiltRelease, trusted_key: Path) -> None:
    """`watchpost ota node provision`: checked, installed and committed at once."""
    command = [
        str(WATCHPOST), "ota", "node", "provision", "--root", str(root),
        "--artifact", str(built.artifact_path), "--manifest", str(built.manifest_path),
        "--trusted-key", str(trusted_key),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"provisioning {built.manifest.release} failed:\n{done.stdout}{done.stderr}")


# -- broken builds


def never_connects(release: str) -> dict[str, bytes]:
    """The agent's files as `release`, with an uplink whose run loop waits for ever: the agent
    starts but never connects, so it cannot pass its health check."""
    files = edge_agent_files(release)
    source = files["edge/uplink/mqtt.py"].decode()
    start = "    async def run(self) -> None:\n        try:\n"
    if start not in source:
        raise RuntimeError("edge/uplink/mqtt.py changed: update how never_connects breaks it")
    silent = "    async def run(self) -> None:\n        await asyncio.Event().wait()\n        try:\n"
    files["edge/uplink/mqtt.py"] = source.replace(start, silent).encode()
    return files


def does_not_come_up(release: str) -> dict[str, bytes]:
    """The firmware's files as `release`, raising as its controller module is imported: the
    slot never gets as far as hearing the edge, so it never confirms itself."""
    files = controller_firmware_files(release)
    files["controller.py"] = b"raise RuntimeError('broken build')\n" + files["controller.py"]
    return files


def _ota_root(workdir: Path) -> Path:
    return workdir / "pole" / "opt-watchpost"  # the node's /opt/watchpost


def _multipart(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
