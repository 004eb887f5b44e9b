"""`watchpost demo story`, part one: the wire contracts at work, in one process, in compressed time.

A pole controller and its edge node talk over a simulated UART that loses writes and picks up
line noise, using the real link codec and session from `protocols.link`. A citizen presses the
bell; the edge turns the controller's frame into the MQTT alarm it would publish; an operator
acknowledges; the lamp at the pole lights. The cabinet door opens. Every MQTT payload shown is
encoded and decoded with `protocols.messages`, as the edge and the fleet will.

Part two runs the same story for real (watchpost.demo_pole); `watchpost demo` itself is the
live city (watchpost.demo_live).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from protocols import link
from protocols import messages as m
from protocols.link import Frame, FrameDecoder, LinkSession
from protocols.topics import node_topic

EPOCH_MS = 1_764_000_000_000  # the simulated clock starts here
NODE_ID = "pole-0412"
STEP_MS = 5


@dataclass
class Side:
    """One end of the UART: a link session, its decoder, and what it has been handed."""

    name: str
    session: LinkSession
    decoder: FrameDecoder = field(default_factory=FrameDecoder)


@dataclass
class NoisyLine:
    """A UART in a street cabinet: some writes are lost, noise bytes appear between them."""

    rng: random.Random
    loss: float
    noise: float
    lost_writes: int = 0
    noise_bursts: int = 0

    def carry(self, data: bytes) -> bytes:
        if not data:
            return data
        if self.rng.random() < self.loss:
            self.lost_writes += 1
            return b""
        if self.rng.random() < self.noise:
            self.noise_bursts += 1
            data = bytes(self.rng.randrange(1, 256) for _ in range(self.rng.randrange(1, 12))) + data
        return data


@dataclass
class DemoReport:
    bell_latency_ms: int | None = None
    lamp_lit_at_ms: int | None = None
    published: list[tuple[str, bytes]] = field(default_factory=list)
    controller: dict[str, int] = field(default_factory=dict)
    edge: dict[str, int] = field(default_factory=dict)
    line: dict[str, int] = field(default_factory=dict)


def _json(payload: bytes) -> dict[str, object]:
    value = json.loads(payload)
    return value if isinstance(value, dict) else {}


def run_demo(
    *,
    duration_ms: int = 12_000,
    loss: float = 0.15,
    noise: float = 0.05,
    seed: int = 7,
    out: Callable[[str], None],
) -> DemoReport:
    rng = random.Random(seed)
    line = NoisyLine(rng, loss, noise)
    controller = Side("controller", LinkSession(0))
    edge = Side("edge", LinkSession(0))
    report = DemoReport()
    seq = 0
    pressed_at: int | None = None
    lamp_on = False
    acked_alarm: str | None = None

    def say(now: int, who: str, text: str) -> None:
        out(f"{now / 1000:6.2f}s  {who:<10} {text}")

    def publish(now: int, message: m.Message, who: str = "edge") -> None:
        nonlocal seq
        topic = node_topic(NODE_ID, m.kind_of(message))
        payload = m.encode(message)
        decoded = m.decode(m.kind_of(message), payload)  # what the fleet will do with it
        assert decoded == message, decoded
        report.published.append((topic, payload))
        say(now, who, f"MQTT {topic}")
        out(f"{'':18}{payload.decode()}")

    controller.session.send(link.T_HELLO, b'{"fw":"0.1.0","rst":"power-on"}', link.CLASS_EVENT)
    edge.session.send(link.T_HELLO, b'{"agent":"0.1.0"}', link.CLASS_EVENT)
    say(0, "line", f"UART with {loss:.0%} of writes lost and noise bursts ({noise:.0%})")

    for now in range(0, duration_ms, STEP_MS):
        ts = EPOCH_MS + now
        # The world acts on the pole.
        if now == 1_500:
            pressed_at = now
            say(now, "citizen", "presses the emergency call bell")
            event = b'{"k":"bell","st":"pressed","id":"bell-1","t":%d}' % now
            controller.session.send(link.T_EVENT, event, link.CLASS_ALARM)
        if now == 7_000:
            say(now, "cabinet", "door opened")
            controller.session.send(link.T_EVENT, b'{"k":"door","st":"open","t":%d}' % now, link.CLASS_EVENT)
        if now % 1_000 == 0:
            reading = b'{"k":"temp","c":%.1f,"v":12.1}' % (23.0 + now / 10_000)
            controller.session.send(link.T_TELEMETRY, reading, link.CLASS_TELEMETRY)
        alarm_shown = report.bell_latency_ms is not None and pressed_at is not None
        if acked_alarm is None and alarm_shown and now >= (pressed_at or 0) + 3_000:
            acked_alarm = f"al-{NODE_ID}-1"
            say(now, "operator", "acknowledges the call on the dashboard")
            publish(now, m.AlarmAck(ts=ts, alarm_id=acked_alarm, operator="operator.kim"), who="fleet")
            say(now, "edge", "alarm acknowledged: tells the controller to light the lamp")
            edge.session.send(link.T_COMMAND, b'{"cmd":"lamp","on":true}', link.CLASS_EVENT)

        # The wire, both ways.
        for sender, receiver in ((controller, edge), (edge, controller)):
            wire = line.carry(b"".join(sender.session.poll(now)))
            for item in receiver.decoder.feed(wire):
                if not isinstance(item, Frame):
                    say(now, receiver.name, f"dropped a damaged frame ({item.reason})")
                    continue
                frame = receiver.session.on_frame(item, now)
                if frame is None:
                    continue
                body = _json(frame.payload) if frame.payload else {}
                if receiver is edge:
                    if frame.frame_type == link.T_HELLO:
                        say(now, "edge", f"controller says hello: {body}")
                    elif (
                        frame.frame_type == link.T_EVENT
                        and body.get("k") == "bell"
                        and pressed_at is not None
                    ):
                        report.bell_latency_ms = now - pressed_at
                        say(now, "edge", f"bell frame in after {now - pressed_at} ms; alarm goes out at once")
                        seq += 1
                        publish(
                            now,
                            m.BellAlarm(
                                ts=ts,
                                seq=seq,
                                alarm_id=f"al-{NODE_ID}-1",
                                bell_id="bell-1",
                                pressed_at=EPOCH_MS + pressed_at,
                                source="controller",
                            ),
                        )
                    elif frame.frame_type == link.T_EVENT and body.get("k") == "door":
                        seq += 1
                        publish(
                            now,
                            m.Event(
                                ts=ts,
                                seq=seq,
                                event_id=f"ev-{NODE_ID}-1",
                                category="door",
                                state="raised",
                                severity="major",
                                detail="cabinet door opened",
                            ),
                        )
                    elif frame.frame_type == link.T_RESULT:
                        say(now, "edge", f"controller confirms: {body}")
                elif frame.frame_type == link.T_COMMAND and body.get("cmd") == "lamp":
                    lamp_on = bool(body.get("on"))
                    report.lamp_lit_at_ms = now
                    say(now, "controller", '"call received" lamp ON: the citizen sees help is coming')
                    controller.session.send(link.T_RESULT, b'{"cmd":"lamp","ok":true}', link.CLASS_EVENT)
                elif frame.frame_type == link.T_HELLO:
                    say(now, "controller", f"edge says hello: {body}")

    for side, into in ((controller, report.controller), (edge, report.edge)):
        s = side.session
        into.update(
            sent=s.sent,
            acked=s.acked,
            retransmits=s.retransmits,
            duplicates=s.duplicates,
            delivered=s.delivered,
        )
        into.update({f"decode-{reason}": n for reason, n in sorted(side.decoder.error_counts.items())})
    report.line.update(lost_writes=line.lost_writes, noise_bursts=line.noise_bursts)
    out("")
    out(f"controller link: {report.controller}")
    out(f"edge link:       {report.edge}")
    out(f"serial line:     {report.line}")
    out(f"lamp {'ON' if lamp_on else 'off'}; bell press reached the edge in {report.bell_latency_ms} ms")
    return report
