"""Updates over the air on a pole, end to end through the real processes: releases built by
the real build tool and signed with the lab's key, uploaded to the fleet and offered by its
campaign runner; the edge agent under its boot selector, and the controller's firmware in its
A/B slots, written by the agent over the controller's console. Each scenario first gets a
release that cannot come up, which the pole takes back by itself while the fleet shows why,
then a good one, which is committed; and the pole still answers a citizen's call afterwards.

Simulated rig only, for now: the node must pin the lab's release key (a file on the node) and,
for the agent, hold release 1.0.0 under its boot selector; the simulated node is set up so by
`node_config`, but the real rig's driver cannot yet put a file on the Pi.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hil_tests.rig.ota import (
    BASE_FIRMWARE,
    BASE_RELEASE,
    ReleaseDesk,
    campaign_node,
    campaign_settled,
    controller_firmware,
    controller_firmware_updates,
    controller_starts,
    does_not_come_up,
    edge_agent_updates,
    never_connects,
    progress,
    start_campaign,
)
from hil_tests.rig.rig import Rig, wait_until

BAD_RELEASE, GOOD_RELEASE = "1.0.1", "1.1.0"
BAD_FIRMWARE, GOOD_FIRMWARE = "0.1.1", "0.2.0"
INSTALL_STATES = ["notified", "downloaded", "verified", "installing", "restarting", "health-check"]


def births(rig: Rig) -> list[str]:
    return [s.json()["agent_version"] for s in rig.sent("birth")]


def bell_becomes_an_alarm(rig: Rig) -> dict[str, Any]:
    rig.press_bell()
    (alarm,) = rig.lab.fleet.until(f"/alarms?latched=true&node={rig.node_id}", lambda page: page["items"])
    assert (alarm["bell_id"], alarm["source"]) == ("bell-1", "controller"), alarm
    found: dict[str, Any] = alarm
    return found


@pytest.mark.lg_feature("simulated")
@pytest.mark.node_config.with_args(edge_agent_updates)
def test_an_agent_release_that_fails_its_health_check_is_rolled_back_then_a_good_one_commits(
    rig: Rig, tmp_path: Path
) -> None:
    fleet, node = rig.lab.fleet, rig.node_id
    assert fleet.node(node)["agent_version"] == BASE_RELEASE  # the boot selector ran 1.0.0
    desk = ReleaseDesk(rig.lab, tmp_path)  # 1.0.0 is there already: the node's base

    # A release whose uplink never connects: installed, started, and taken back by the pole.
    uploaded = desk.upload(desk.agent(BAD_RELEASE, files=never_connects(BAD_RELEASE)))
    campaign = start_campaign(fleet, uploaded["release_id"], node, version=BASE_RELEASE)
    assert campaign["nodes"] == 1, campaign
    stopped = campaign_settled(fleet, campaign["campaign_id"])
    assert stopped["state"] == "paused", stopped
    assert stopped["reason"].startswith("abort: wave 0 has 1 of 1"), stopped["reason"]
    row = campaign_node(fleet, campaign["campaign_id"], node)
    assert (row["state"], row["reason"]) == ("rolled-back", "health-check"), row
    assert "uplink: not connected" in row["detail"], row
    assert progress(rig, campaign["campaign_id"]) == [
        *((state, "") for state in INSTALL_STATES),
        ("rolled-back", "health-check"),
    ]
    # Back on 1.0.0 by its own decision: 1.0.1 never said a word to the fleet.
    rig.wait_sent("birth", lambda body: body["agent_version"] == BASE_RELEASE, count=2)
    assert BAD_RELEASE not in births(rig)
    assert rig.wait_online()["agent_version"] == BASE_RELEASE
    cancelled = fleet.post(f"/ota/campaigns/{campaign['campaign_id']}/cancel", {"note": "bad build"})
    assert cancelled["state"] == "cancelled", cancelled

    # A good release, as a delta from what the pole holds: switched, healthy, committed.
    uploaded = desk.upload(desk.agent(GOOD_RELEASE, base=BASE_RELEASE))
    assert uploaded["delta"]["base_release"] == BASE_RELEASE, uploaded
    campaign = start_campaign(fleet, uploaded["release_id"], node, version=BASE_RELEASE)
    done = campaign_settled(fleet, campaign["campaign_id"])
    assert (done["state"], done["by_state"]) == ("completed", {"committed": 1}), done
    row = campaign_node(fleet, campaign["campaign_id"], node)
    assert (row["state"], row["offers"]) == ("committed", 1), row
    assert progress(rig, campaign["campaign_id"]) == [*((s, "") for s in INSTALL_STATES), ("committed", "")]
    assert births(rig)[-1] == GOOD_RELEASE
    assert rig.wait_online()["agent_version"] == GOOD_RELEASE

    # The pole still works: a citizen's call reaches the control centre through 1.1.0.
    alarm = bell_becomes_an_alarm(rig)
    (sent,) = rig.sent("alarm")
    assert sent.json()["alarm_id"] == alarm["alarm_id"]


@pytest.mark.lg_feature("simulated")
@pytest.mark.node_config.with_args(controller_firmware_updates)
def test_a_firmware_release_that_does_not_come_up_is_rolled_back_then_a_good_one_commits(
    rig: Rig, tmp_path: Path
) -> None:
    fleet, node = rig.lab.fleet, rig.node_id
    # The node's first birth may go out before the controller's HELLO: the campaign picks the
    # node by the firmware the fleet knows, so it must know it first.
    wait_until("the controller heard", lambda: controller_starts(rig))
    assert controller_firmware(rig) == BASE_FIRMWARE
    desk = ReleaseDesk(rig.lab, tmp_path)

    # A firmware that raises as it is imported: the controller's selector takes the trial back.
    uploaded = desk.upload(desk.firmware(BAD_FIRMWARE, files=does_not_come_up(BAD_FIRMWARE)))
    starts = len(controller_starts(rig))
    campaign = start_campaign(fleet, uploaded["release_id"], node, version=BASE_FIRMWARE)
    assert campaign["nodes"] == 1, campaign
    stopped = campaign_settled(fleet, campaign["campaign_id"])
    assert stopped["state"] == "paused", stopped
    assert stopped["reason"].startswith("abort: wave 0 has 1 of 1"), stopped["reason"]
    row = campaign_node(fleet, campaign["campaign_id"], node)
    assert (row["state"], row["reason"]) == ("rolled-back", "did-not-start"), row
    # Either the controller's selector reverted the trial itself ("went back to") or the
    # updater, hearing no HELLO, switched it back ("is back on"): both end on the old slot.
    assert re.search(rf"(went back to|is back on) {re.escape(BASE_FIRMWARE)}\b", row["detail"]), row
    assert progress(rig, campaign["campaign_id"]) == [
        *((state, "") for state in INSTALL_STATES),
        ("rolled-back", "did-not-start"),
    ]
    # The controller said HELLO again on its old slot; the broken one never did.
    started = controller_starts(rig)[starts:]
    assert any(f"firmware {BASE_FIRMWARE}" in detail for detail in started), started
    assert not any(f"firmware {BAD_FIRMWARE}" in detail for detail in controller_starts(rig))
    assert controller_firmware(rig) == BASE_FIRMWARE
    cancelled = fleet.post(f"/ota/campaigns/{campaign['campaign_id']}/cancel", {"note": "bad build"})
    assert cancelled["state"] == "cancelled", cancelled

    # A good firmware: written to the idle slot, confirmed by itself, committed.
    uploaded = desk.upload(desk.firmware(GOOD_FIRMWARE))
    starts = len(controller_starts(rig))
    campaign = start_campaign(fleet, uploaded["release_id"], node, version=BASE_FIRMWARE)
    done = campaign_settled(fleet, campaign["campaign_id"])
    assert (done["state"], done["by_state"]) == ("completed", {"committed": 1}), done
    row = campaign_node(fleet, campaign["campaign_id"], node)
    assert (row["state"], row["offers"]) == ("committed", 1), row
    assert progress(rig, campaign["campaign_id"]) == [*((s, "") for s in INSTALL_STATES), ("committed", "")]
    started = controller_starts(rig)[starts:]
    assert any(f"firmware {GOOD_FIRMWARE}" in detail for detail in started), started
    assert controller_firmware(rig) == GOOD_FIRMWARE

    # The pole still works: a press on the new firmware reaches the control centre.
    bell_becomes_an_alarm(rig)
