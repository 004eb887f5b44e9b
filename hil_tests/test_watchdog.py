"""A hung pole controller: its hardware watchdog resets it, the serial link to the node comes
back by itself, the citizen's bell works again, and the centre learns why the controller
restarted ("watchdog", from the controller's HELLO after the reset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hil_tests.rig.rig import Rig


def restarted(cause: str) -> Callable[[dict[str, Any]], bool]:
    """The node's event for a controller restart with `cause`, as the controller's HELLO said."""
    return lambda e: e["category"] == "controller" and f"restarted ({cause})" in e["detail"]


def test_a_hung_controller_is_reset_by_its_watchdog_and_the_bell_works_again(rig: Rig) -> None:
    fleet = rig.lab.fleet
    rig.wait_sent("event", restarted("power-on"))  # the controller is up and talking

    rig.controller.hang()

    # The node tells the centre the controller restarted and why, as the HELLO after the reset
    # said: news for the pole's log, with the severity of a fault to look at.
    (restart,) = rig.wait_sent("event", restarted("watchdog"))
    event = restart.json()
    assert (event["component"], event["state"], event["severity"]) == ("controller", "info", "major")

    # The link is back: the controller's own telemetry flows through the node again...
    restarted_at = event["ts"]
    rig.wait_sent(
        "telemetry",
        lambda t: t["ts"] > restarted_at and t["readings"].get("controller_temp_c") is not None,
        count=2,
    )
    # ...and a press after the reset reaches the operator as an alarm from the controller.
    rig.press_bell()
    latched = fleet.until(f"/alarms?latched=true&node={rig.node_id}", lambda page: page["items"])
    (alarm,) = latched
    assert (alarm["bell_id"], alarm["source"]) == ("bell-1", "controller")
    assert alarm["pressed_at_ms"] > restarted_at
    assert fleet.faults(rig.node_id) == []  # a reset that healed the pole leaves no ticket open

    # The node sends a new birth when its controller restarts, so the operator's view of the
    # pole names the watchdog without anyone asking.
    node = fleet.until(
        f"/nodes/{rig.node_id}", lambda n: n if n["controller_reset_cause"] == "watchdog" else None
    )
    assert node["online"] is True
