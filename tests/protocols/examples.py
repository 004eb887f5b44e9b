"""One realistic message of every kind, as a pole in the field would send them."""

from __future__ import annotations

from protocols import messages as m
from protocols.topics import Kind

TS = 1_764_000_000_000  # 2025-11-24T16:00:00Z

EXAMPLES: dict[Kind, m.Message] = {
    Kind.BIRTH: m.NodeBirth(
        ts=TS,
        seq=0,
        bd_seq=17,
        site_id="s-0412",
        hardware="rpi4b",
        agent_version="0.1.0",
        controller=m.ControllerInfo(link="serial", firmware_version="0.1.0", reset_cause="watchdog"),
        cameras=[
            m.CameraInfo(camera_id="cam-1", name="North approach"),
            m.CameraInfo(camera_id="cam-2", name="Bus stop"),
        ],
        bells=["bell-1"],
        capabilities=["lamp", "self-test"],
    ),
    Kind.DEATH: m.NodeDeath(ts=TS, bd_seq=17),
    Kind.TELEMETRY: m.Telemetry(
        ts=TS + 10_000,
        seq=4,
        readings=m.Readings(
            uptime_s=86_400,
            cpu_temp_c=51.5,
            throttled=False,
            supply_v=12.1,
            cameras=[m.CameraHealth(camera_id="cam-1", reachable=True, fps=15.0, bitrate_kbps=2048.0)],
            storage=[
                m.StorageHealth(device="mmcblk0", health="ok", free_bytes=12_000_000_000, wear_pct=10.0)
            ],
        ),
    ),
    Kind.EVENT: m.Event(
        ts=TS,
        seq=5,
        event_id="ev-0412-000031",
        category="door",
        state="raised",
        severity="major",
        detail="cabinet door opened",
    ),
    Kind.ALARM: m.BellAlarm(
        ts=TS,
        seq=6,
        alarm_id="al-0412-000007",
        bell_id="bell-1",
        pressed_at=TS - 40,
        source="controller",
    ),
    Kind.VIDEO: m.VideoBatch(
        ts=TS,
        seq=7,
        historical=True,
        records=[
            m.RecordingSegment(
                camera_id="cam-1",
                start=TS - 60_000,
                end=TS,
                bytes=15_360_000,
                codec="h264",
                width=1920,
                height=1080,
                fps=15.0,
                bitrate_kbps=2048.0,
                bookmarks=["al-0412-000007"],
            ),
            m.VideoEvent(camera_id="cam-2", at=TS - 5_000, kind="motion"),
        ],
    ),
    Kind.RESULT: m.CommandResult(ts=TS, seq=8, command_id="cmd-991", status="ok", output={"rtt_ms": 12}),
    Kind.OTA_PROGRESS: m.OtaProgress(
        ts=TS, seq=9, campaign_id="camp-12", release="0.2.0", state="downloading", progress=0.5
    ),
    Kind.VISIT: m.SiteVisit(
        ts=TS,
        seq=10,
        visit_id="visit-1",
        action="check-in",
        technician="tech-0193",
        at=TS - 60_000,
        node_key_id="0123456789abcdef",
        signature="A" * 86 + "==",  # shape only: tests/protocols/test_visits.py signs for real
    ),
    Kind.COMMAND: m.Command(
        ts=TS,
        command_id="cmd-991",
        name="ping",
        issued_by="operator.kim",
        expires_at=TS + 60_000,
    ),
    Kind.ALARM_ACK: m.AlarmAck(ts=TS, alarm_id="al-0412-000007", operator="operator.kim"),
    Kind.OTA_OFFER: m.OtaOffer(
        ts=TS,
        campaign_id="camp-12",
        release="0.2.0",
        manifest_url="http://fleet.local/ota/0.2.0/manifest.json",
        manifest_sha256="ab" * 32,
        expires_at=TS + 86_400_000,
    ),
    Kind.HOST_STATE: m.HostState(ts=TS, host_id="fleet-1", online=True),
}
