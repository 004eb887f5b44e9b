"""The inventory's storage devices follow what the nodes' telemetry says of them, one row per
(node, device), the latest report winning within a batch."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.ingest.apply import apply, apply_telemetry
from fleet.inventory.models import StorageDevice
from protocols import messages as m

T0 = 1_764_000_000_000


def telemetry(seq: int, *devices: m.StorageHealth) -> m.Telemetry:
    return m.Telemetry(ts=T0 + seq, seq=seq, readings=m.Readings(uptime_s=seq, storage=list(devices)))


def test_storage_devices_follow_the_telemetry(fleet_engine: sa.Engine) -> None:
    birth = m.NodeBirth(ts=T0, seq=0, bd_seq=1, site_id="site-0412", hardware="rpi4", agent_version="0.1.0")
    sd_ok = m.StorageHealth(device="mmcblk0", health="ok", free_bytes=20_000_000_000, wear_pct=12.0)
    sd_worn = m.StorageHealth(device="mmcblk0", health="warning", free_bytes=19_000_000_000, wear_pct=91.0)
    usb = m.StorageHealth(device="sda", health="failing", read_only=True)
    with Session(fleet_engine) as session, session.begin():
        apply(session, "pole-0412", birth, T0)
        # One batch: the card twice (the later report wins) and a USB disk.
        apply_telemetry(
            session,
            [("pole-0412", telemetry(1, sd_ok), T0 + 1), ("pole-0412", telemetry(2, sd_worn, usb), T0 + 2)],
        )
    with Session(fleet_engine) as session, session.begin():
        apply_telemetry(session, [("pole-0412", telemetry(3, sd_ok), T0 + 3)])  # the card again, alone
    with Session(fleet_engine) as session:
        rows = session.execute(
            sa.select(
                StorageDevice.device,
                StorageDevice.health,
                StorageDevice.wear_pct,
                StorageDevice.free_bytes,
                StorageDevice.read_only,
            ).order_by(StorageDevice.device)
        ).all()
    assert rows == [
        ("mmcblk0", "ok", 12.0, 20_000_000_000, False),  # batch 2's report replaced batch 1's
        ("sda", "failing", None, None, True),  # not reported since: kept as last seen
    ]
