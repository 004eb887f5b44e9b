"""The pole controller (firmware/controller.py) on the real MicroPython unix port.

The controller runs in scenarios/rig.py on fake pins and a fake clock; these tests play the
edge node with protocols/link.py on CPython: by hand with encode_frame() where the exact frames
matter, otherwise through the `Edge` helper's own LinkSession.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocols import link

from .conftest import Edge, RigProcess, scenario_stdout, supply_raw, temp_raw

pytestmark = pytest.mark.micropython


def decode(data: bytes) -> list[link.Frame]:
    items = link.FrameDecoder().feed(data)
    assert all(isinstance(item, link.Frame) for item in items), items
    return [item for item in items if isinstance(item, link.Frame)]


def sequenced(frames: list[link.Frame], frame_type: int) -> list[link.Frame]:
    return [f for f in frames if f.frame_type == frame_type]


def press(rig: RigProcess, edge: Edge | None = None, hold_ms: int = 150) -> None:
    """A citizen's press: contacts bounce on the way down and on the way up."""
    for level, ms in ((0, 2), (1, 3), (0, 1), (1, 2), (0, hold_ms), (1, 2), (0, 3), (1, 1)):
        rig.pin("bell", level)
        if edge is None:
            rig.run(ms, step=1)
        else:
            edge.step(ms)


def connected(rig: RigProcess, **cfg: Any) -> Edge:
    edge = Edge(rig, rig.init(**cfg))
    edge.connect()
    return edge


# -- session start ------------------------------------------------------------------------


def test_hello_is_the_first_sequenced_frame_and_waits_for_the_edge(rig: RigProcess) -> None:
    now = rig.init(t0=5000, reset_cause="watchdog")
    press(rig)  # a press before the edge is heard: it waits behind the HELLO
    # Nobody heard yet: heartbeats only, nothing sequenced.
    _, out = rig.run(2000)
    frames = decode(out)
    assert frames
    assert {f.frame_type for f in frames} == {link.T_HEARTBEAT}
    # A heartbeat from the edge: the HELLO goes at once.
    _, out = rig.run(10, rx=link.encode_frame(link.T_HEARTBEAT, 0, 0))
    first = next(f for f in decode(out) if f.seq != 0)
    assert first.frame_type == link.T_HELLO
    assert json.loads(first.payload) == {"fw": "0.1.0", "rst": "watchdog", "t": now}
    # Acked: the press comes next.
    _, out = rig.run(10, rx=link.encode_frame(link.T_ACK, 0, first.seq))
    second = next(f for f in decode(out) if f.seq != 0)
    assert second.frame_type == link.T_EVENT
    assert json.loads(second.payload)["k"] == "bell"


# -- bell -----------------------------------------------------------------------------------


def test_bell_press_is_one_alarm_retransmitted_until_acked(rig: RigProcess) -> None:
    rig.init(t0=1000)
    heartbeat = link.encode_frame(link.T_HEARTBEAT, 0, 0)
    _, out = rig.run(20, rx=heartbeat)
    (hello,) = sequenced(decode(out), link.T_HELLO)
    rig.run(20, rx=link.encode_frame(link.T_ACK, 0, hello.seq))

    press(rig)
    # Keep the link alive with heartbeats that do not acknowledge the bell frame.
    out = b""
    for _ in range(3):
        _, chunk = rig.run(500, rx=link.encode_frame(link.T_HEARTBEAT, 0, hello.seq))
        out += chunk
    events = sequenced(decode(out), link.T_EVENT)
    assert len(events) >= 3  # sent, then retransmitted after 200 ms, 400 ms, ...
    assert len({(f.seq, f.payload) for f in events}) == 1  # the very same frame each time
    alarm = json.loads(events[0].payload)
    assert alarm["k"] == "bell"
    assert alarm["st"] == "pressed"
    assert alarm["id"] == "bell-1"
    assert alarm["n"] == 1

    rig.run(10, rx=link.encode_frame(link.T_ACK, 0, events[0].seq))
    later = b""
    for _ in range(10):
        _, chunk = rig.run(500, rx=link.encode_frame(link.T_HEARTBEAT, 0, events[0].seq))
        later += chunk
    assert sequenced(decode(later), link.T_EVENT) == []  # acked: never sent again
    state = rig.state()
    assert (state["presses"], state["alarms"], state["backlog"]) == (1, 1, 0)
    assert state["retransmits"] >= 2


def test_bounce_and_presses_close_together_are_counted_not_lost(rig: RigProcess) -> None:
    edge = connected(rig)
    for _ in range(3):
        press(rig, edge)
        edge.run(200)
    edge.run(2000)
    alarms = edge.payloads(link.T_EVENT, "bell")
    assert sum(a["n"] for a in alarms) == 3  # each bouncy press counted once
    assert rig.state()["presses"] == 3


def test_stuck_button_raises_one_fault_and_clears_on_release(rig: RigProcess) -> None:
    edge = connected(rig, stuck_after_ms=2000)
    rig.pin("bell", 0)
    edge.run(7000)  # held three times longer than stuck_after_ms
    rig.pin("bell", 1)
    edge.run(500)
    bell = edge.payloads(link.T_EVENT, "bell")
    assert [p["st"] for p in bell] == ["pressed", "stuck", "stuck-cleared"]
    assert bell[0]["n"] == 1


# -- bell circuit, door, sensors --------------------------------------------------------------


def test_bell_circuit_open_and_short_each_one_fault_cleared_on_return(rig: RigProcess) -> None:
    edge = connected(rig)
    for raw in (65000, 32768, 1200, 32768):
        rig.adc("loop", raw)
        edge.run(1000)
    circuit = edge.payloads(link.T_EVENT, "circuit")
    assert [p["st"] for p in circuit] == ["open", "normal", "short", "normal"]
    assert circuit[0]["raw"] == 65000
    assert circuit[2]["raw"] == 1200


def test_door_open_and_closed_events(rig: RigProcess) -> None:
    edge = connected(rig)
    for level in (1, 0, 1, 1, 1):
        rig.pin("door", level)
        edge.step(2)  # chatter as the door starts to move
    edge.run(500)
    rig.pin("door", 0)
    edge.run(500)
    assert [p["st"] for p in edge.payloads(link.T_EVENT, "door")] == ["open", "closed"]


def test_over_temperature_and_low_supply_once_per_crossing(rig: RigProcess) -> None:
    edge = connected(rig)
    rig.adc("temp", temp_raw(75.0))
    rig.adc("supply", supply_raw(10.0))
    edge.run(3000)
    rig.adc("temp", temp_raw(68.0))  # inside the hysteresis band: still hot
    edge.run(2000)
    rig.adc("temp", temp_raw(40.0))
    rig.adc("supply", supply_raw(12.5))
    edge.run(2000)
    temp = edge.payloads(link.T_EVENT, "temp")
    supply = edge.payloads(link.T_EVENT, "supply")
    assert [p["st"] for p in temp] == ["high", "normal"]
    assert temp[0]["c"] == pytest.approx(75.0, abs=0.1)
    assert [p["st"] for p in supply] == ["low", "normal"]
    assert supply[0]["v"] == pytest.approx(10.0, abs=0.01)


# -- commands ----------------------------------------------------------------------------------


def test_lamp_command_lights_the_lamp_and_answers(rig: RigProcess) -> None:
    edge = connected(rig)
    edge.command({"cmd": "lamp", "on": True, "buzz": True, "s": 2, "id": "c-7"})
    edge.run(200)
    state = rig.state()
    assert (state["lamp"], state["buzzer"]) == (1, 1)
    result = edge.results()[-1]
    assert result["cmd"] == "lamp"
    assert result["ok"] is True
    assert (result["lamp"], result["buzz"], result["id"]) == (1, 1, "c-7")
    edge.run(2000)  # the two seconds are up
    assert (rig.state()["lamp"], rig.state()["buzzer"]) == (0, 0)
    edge.command({"cmd": "lamp", "on": True, "id": 8})
    edge.run(200)
    edge.command({"cmd": "lamp", "on": False, "id": 9})
    edge.run(200)
    assert [(r["lamp"], r["id"]) for r in edge.results()[-2:]] == [(1, 8), (0, 9)]
    assert rig.state()["lamp"] == 0


def test_repeated_command_frame_is_carried_out_once(rig: RigProcess) -> None:
    edge = connected(rig)
    command = link.encode_frame(link.T_COMMAND, 7, 0, b'{"cmd":"lamp","on":true,"id":"c-1"}')
    edge.step(rx=command)
    edge.run(200)
    rig.pin("bell", 1)
    edge.step(rx=command)  # the edge retransmitted: its ack was lost
    edge.run(500)
    state = rig.state()
    assert state["duplicates"] == 1
    assert state["commands"] == 1
    results = sequenced(edge.frames, link.T_RESULT)
    assert len({f.seq for f in results}) == 1
    assert [r["id"] for r in edge.results()] == ["c-1"]


def test_unknown_and_malformed_commands_are_answered_and_counted(rig: RigProcess) -> None:
    edge = connected(rig, telemetry_ms=3000)
    edge.command({"cmd": "frobnicate", "id": 3})
    for payload in (b'{"cmd":', b"[1,2]", b'{"id":4}', b'{"cmd":"lamp","on":"yes"}', b"\xff\xfe"):
        edge.session.send(link.T_COMMAND, payload, link.CLASS_EVENT)
    edge.command({"cmd": "ping", "id": 5})
    edge.run(3500)
    results = edge.results()
    assert results[0]["cmd"] == "frobnicate"
    assert (results[0]["ok"], results[0]["err"], results[0]["id"]) == (False, "unknown-command", 3)
    assert [(r["ok"], r["err"]) for r in results[1:6]] == [(False, "bad-command")] * 5
    assert results[1:6][3]["cmd"] == "lamp"
    assert results[6] == {"cmd": "ping", "ok": True, "id": 5, "t": results[6]["t"]}  # still serving
    state = rig.state()
    assert (state["commands"], state["unknown_commands"], state["bad_commands"]) == (7, 1, 5)
    assert state["exceptions"] == 0
    counters = edge.payloads(link.T_TELEMETRY, "cnt")[-1]
    assert counters["cm"] == [7, 1, 5]


def test_self_test_and_status_report_the_pole(rig: RigProcess) -> None:
    edge = connected(rig)
    edge.command({"cmd": "self-test", "id": "st-1"})
    edge.run(300)
    rig.adc("loop", 65000)  # a cut bell loop: the self-test reads it at once
    edge.command({"cmd": "self-test", "id": "st-2"})
    rig.pin("door", 1)
    edge.run(1000)
    edge.command({"cmd": "status", "id": "s-1"})
    edge.run(300)
    good, bad, status = edge.results()
    assert (good["ok"], good["loop"], good["stuck"]) == (True, "normal", 0)
    assert good["c"] == pytest.approx(25.0, abs=0.1)
    assert good["v"] == pytest.approx(12.0, abs=0.01)
    assert (bad["ok"], bad["loop"], bad["raw"]) == (False, "open", 65000)
    assert status["fw"] == "0.1.0"
    assert status["rst"] == "power-on"
    assert status["loop"] == "open"
    assert status["in"] == [0, 0, 1, 0]  # bell up, not stuck, door open, lamp off
    assert status["peer"] == 1
    assert status["heap"] > 0
    assert status["id"] == "s-1"


def test_reboot_answers_first_then_resets(rig: RigProcess) -> None:
    edge = connected(rig)
    edge.command({"cmd": "reboot", "id": "r-1"})
    edge.run(20)
    edge.run_until(lambda: rig.state()["resets"] == 1, limit_ms=6000)
    assert edge.results()[-1]["cmd"] == "reboot"
    assert edge.results()[-1]["ok"] is True
    assert rig.state()["backlog"] == 0  # the result was acked before the reset


# -- robustness ---------------------------------------------------------------------------------


def test_a_failing_input_is_counted_and_the_loop_goes_on(rig: RigProcess) -> None:
    edge = connected(rig, telemetry_ms=1000)
    rig.cmd("break", part="door")
    edge.run(300)
    press(rig, edge)
    edge.run(1500)
    rig.cmd("break", part="door", on=False)
    state = rig.state()
    assert state["exceptions"] > 0
    assert state["error_where"] == "door"
    assert [a["n"] for a in edge.payloads(link.T_EVENT, "bell")] == [1]  # the bell still works
    assert edge.payloads(link.T_TELEMETRY, "cnt")[-1]["exc"] > 0


def test_line_noise_is_counted_in_telemetry(rig: RigProcess) -> None:
    edge = connected(rig, telemetry_ms=1000)
    torn = bytearray(link.encode_frame(link.T_HEARTBEAT, 0, 1))
    torn[-2] ^= 0x01  # a bit flipped in the CRC
    edge.step(rx=bytes(torn) + b"\x00\x07\x01\x02\x00")  # and a broken COBS block
    edge.run(1500)
    fe = dict(zip(link.ERROR_REASONS, edge.payloads(link.T_TELEMETRY, "cnt")[-1]["fe"], strict=True))
    assert fe["bad-crc"] == 1
    assert fe["bad-cobs"] == 1
    assert sum(fe.values()) == 2


def test_link_loss_keeps_every_press_and_drops_telemetry_first(rig: RigProcess) -> None:
    edge = connected(rig, telemetry_ms=1000, queue_limit=8)
    edge.controller_to_edge = False
    edge.edge_to_controller = False
    for _ in range(5):
        press(rig, edge)
        edge.run(2000)
    rig.pin("door", 1)
    edge.run(1000)
    rig.pin("door", 0)
    edge.run(15_000)
    assert edge.payloads(link.T_EVENT) == []  # nothing got through meanwhile
    down = rig.state()
    assert down["peer_up"] is False
    assert down["presses"] == 5

    edge.controller_to_edge = True
    edge.edge_to_controller = True
    edge.run_until(lambda: rig.state()["backlog"] == 0, limit_ms=30_000)
    alarms = edge.payloads(link.T_EVENT, "bell")
    assert sum(a["n"] for a in alarms) == 5  # folded, none lost
    assert len(alarms) == 2  # the first press, then the four that came while it waited
    assert alarms[1]["t"] > alarms[0]["t"]
    assert [p["st"] for p in edge.payloads(link.T_EVENT, "door")] == ["open", "closed"]
    state = rig.state()
    assert state["dropped_telemetry"] > 0
    assert state["dropped_events"] == 0
    assert state["link_downs"] >= 1


def test_an_edge_restart_mid_alarm_still_delivers_it_once(rig: RigProcess) -> None:
    edge = connected(rig)
    edge.controller_to_edge = False  # the alarm goes out, but the edge is rebooting
    press(rig, edge)
    edge.run(1000)
    # A fresh edge agent: new session, new decoder, nothing accepted yet (ack 0).
    fresh = Edge(rig, edge.now)
    fresh.run(3000)
    alarms = fresh.payloads(link.T_EVENT, "bell")
    assert [a["n"] for a in alarms] == [1]
    assert rig.state()["backlog"] == 0
    press(rig, fresh)  # and the next press is not folded into a stale, acked alarm
    fresh.run(1000)
    assert [a["n"] for a in fresh.payloads(link.T_EVENT, "bell")] == [1, 1]


def test_the_controller_runs_across_the_ticks_ms_wrap(rig: RigProcess) -> None:
    # ticks_ms() wraps at 2**30 on the Pico; start 3 s before it.
    edge = connected(rig, t0=(1 << 30) - 3000, telemetry_ms=1000)
    edge.command({"cmd": "lamp", "on": True, "s": 4})
    edge.run(1000)
    press(rig, edge)
    edge.run(2500)  # the wrap happens here
    assert rig.state()["lamp"] == 1
    edge.run(1000)
    assert rig.state()["lamp"] == 0  # the 4 s were counted across the wrap
    rig.adc("loop", 65000)
    edge.run(2000)
    assert [a["n"] for a in edge.payloads(link.T_EVENT, "bell")] == [1]
    assert [p["st"] for p in edge.payloads(link.T_EVENT, "circuit")] == ["open"]
    ups = [p["up"] for p in edge.payloads(link.T_TELEMETRY, "tel")]
    assert ups == sorted(ups)
    assert ups[-1] >= 6
    assert rig.state()["exceptions"] == 0


def test_main_loop_boots_on_the_unix_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As the simulator starts it: reset cause in the environment, watchdog fed through a file.
    wdt = tmp_path / "wdt"
    wdt.touch()
    monkeypatch.setenv("WATCHPOST_RESET_CAUSE", "watchdog")
    monkeypatch.setenv("WATCHPOST_WDT", str(wdt))
    ready, line = scenario_stdout("boot.py").splitlines()
    assert ready == "watchpost-controller 0.1.0 ready reset=watchdog"
    result = json.loads(line)
    assert result["hello"] == {"fw": "0.1.0", "rst": "watchdog", "t": result["hello"]["t"]}
    assert result["wdt_feeds"] == result["loops"]
    assert wdt.read_bytes() == b"\x01" * result["loops"]
