"""`watchpost demo story` (one pole's narrated walk-through), the `watchpost demo` command's
options, and the `watchpost` command line. The live demo itself runs in a browser test:
tests/web/test_demo_browser.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from protocols import messages as m
from protocols.link import T_EVENT, encode_frame
from protocols.topics import parse_topic
from watchpost.cli import main
from watchpost.demo import run_demo


def test_demo_bell_press_reaches_the_centre_and_lights_the_lamp_over_a_bad_line() -> None:
    lines: list[str] = []
    report = run_demo(loss=0.3, noise=0.2, seed=3, out=lines.append)
    assert report.bell_latency_ms is not None
    assert report.lamp_lit_at_ms is not None
    assert report.line["lost_writes"] > 0  # the line really was bad
    assert report.controller["retransmits"] > 0
    kinds = []
    for topic, payload in report.published:
        parsed = parse_topic(topic)
        assert not isinstance(parsed, Exception)
        message = m.decode(parsed.kind, payload)
        assert not isinstance(message, Exception), message
        kinds.append(parsed.kind.value)
    assert kinds == ["alarm", "alarm-ack", "event"]


@pytest.mark.broker
@pytest.mark.micropython
def test_demo_command_runs_from_the_installed_script(micropython: Path) -> None:
    script = Path(sys.executable).parent / "watchpost"
    result = subprocess.run(
        [str(script), "demo", "story", "--duration", "10"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "lamp ON" in result.stdout
    assert "watchpost/v1/node/pole-0412/up/alarm" in result.stdout
    # Part two: the real firmware, agent and broker.
    assert "pole controller: the real firmware on the simulated device" in result.stdout
    # The fleet manager (ingest and API): the operator sees and acknowledges the alarm, a
    # ticket runs from the forced door to the report, the check-in verified by the node.
    assert "operator   sees the bell alarm" in result.stdout
    assert "check-in node-verified by the node's signature: ticket on site" in result.stdout
    assert "door fault ticket: reported, check-in node-verified: True" in result.stdout
    assert "fleet -> node  alarm-ack" in result.stdout
    assert "MQTT kinds the node sent: alarm, birth, death, event, video, visit" in result.stdout


def test_demo_link_only_needs_no_broker() -> None:
    result = CliRunner().invoke(main, ["demo", "story", "--duration", "8", "--link-only"])
    assert result.exit_code == 0, result.output
    assert "part two" not in result.output


def test_demo_refuses_an_impossible_loss_rate() -> None:
    result = CliRunner().invoke(main, ["demo", "story", "--loss", "1.5"])
    assert result.exit_code == 2
    assert "1.5 is outside 0..0.9" in result.output


def test_demo_refuses_a_city_without_simulated_poles() -> None:
    # Pole 1 is the real one; the camera fault of the first minute needs a simulated pole.
    result = CliRunner().invoke(main, ["demo", "--poles", "1"])
    assert result.exit_code == 2
    assert "1 is not in the range 2<=x<=500" in result.output


def test_demo_help_names_the_live_options_and_the_story() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--poles", "--broker", "--port", "--data-dir", "--for"):
        assert option in result.output
    assert "story" in result.output


def test_link_decode_shows_frames_and_errors() -> None:
    wire = encode_frame(T_EVENT, 7, 2, b"bell") + b"\x13\x37\x00"
    result = CliRunner().invoke(main, ["link", "decode", wire.hex(" ")])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "frame event seq=7 ack=2 payload=b'bell'",
        "error bad-cobs: invalid COBS block structure",
    ]


def test_link_decode_refuses_what_is_not_hex() -> None:
    result = CliRunner().invoke(main, ["link", "decode", "zz"])
    assert result.exit_code == 2
    assert "not hex" in result.output
