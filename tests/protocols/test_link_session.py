"""Ack, retransmit, duplicate and liveness rules of protocols.link.LinkSession."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import link
from protocols.link import CLASS_ALARM, CLASS_EVENT, CLASS_TELEMETRY, Frame, FrameDecoder, LinkSession


@dataclass
class End:
    """One side of a link: its session, its decoder, and what it delivered."""

    session: LinkSession
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    delivered: list[Frame] = field(default_factory=list)
    store_at_once: bool = False  # with confirm_delivery: confirm each frame as it arrives

    def receive(self, wire: bytes, now: int) -> None:
        for item in self.decoder.feed(wire):
            if isinstance(item, Frame):
                got = self.session.on_frame(item, now)
                if got is not None:
                    self.delivered.append(got)
                    if self.store_at_once:
                        self.session.confirm(got.seq)


def exchange(a: End, b: End, now: int) -> None:
    b.receive(b"".join(a.session.poll(now)), now)
    a.receive(b"".join(b.session.poll(now)), now)


def run(a: End, b: End, start: int, until: int, step: int = 10) -> int:
    for now in range(start, until, step):
        exchange(a, b, now)
    return until


def payloads(end: End, frame_type: int | None = None) -> list[bytes]:
    return [f.payload for f in end.delivered if frame_type is None or f.frame_type == frame_type]


def test_event_is_delivered_once_and_acknowledged() -> None:
    mcu, edge = End(LinkSession(0)), End(LinkSession(0))
    mcu.session.send(link.T_EVENT, b"bell", CLASS_ALARM)
    run(mcu, edge, 0, 500)
    assert payloads(edge, link.T_EVENT) == [b"bell"]
    assert mcu.session.backlog() == 0
    assert mcu.session.acked == 1
    assert mcu.session.retransmits == 0


def test_nothing_sequenced_is_sent_before_the_peer_is_heard() -> None:
    mcu = LinkSession(0)
    mcu.send(link.T_EVENT, b"bell", CLASS_ALARM)
    wire = b"".join(mcu.poll(0))
    assert [f.frame_type for f in FrameDecoder().feed(wire)] == [link.T_HEARTBEAT]
    assert mcu.backlog() == 1


def test_unacknowledged_frame_is_retransmitted_with_backoff_until_acked() -> None:
    mcu = LinkSession(0, rto_ms=100, rto_max_ms=400, dead_after_ms=10_000)
    mcu.on_frame(Frame(link.T_HEARTBEAT, 0, 0), 0)  # the edge is there
    mcu.send(link.T_EVENT, b"bell", CLASS_ALARM)
    sent_at = []
    for now in range(0, 2000, 10):
        for wire in mcu.poll(now):
            for frame in FrameDecoder().feed(wire):
                if isinstance(frame, Frame) and frame.frame_type == link.T_EVENT:
                    sent_at.append(now)
        mcu.on_frame(Frame(link.T_HEARTBEAT, 0, 0), now)  # alive, but never acks
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert gaps[:3] == [100, 200, 400]
    assert set(gaps[3:]) == {400}
    assert mcu.retransmits == len(sent_at) - 1
    mcu.on_frame(Frame(link.T_ACK, 0, 1), 2000)
    assert mcu.backlog() == 0


def test_retransmission_is_acknowledged_again_but_not_delivered_again() -> None:
    edge = LinkSession(0)
    first = edge.on_frame(Frame(link.T_EVENT, 5, 0, b"bell"), 0)
    again = edge.on_frame(Frame(link.T_EVENT, 5, 0, b"bell"), 10)
    assert first is not None
    assert again is None
    assert edge.duplicates == 1
    acks = [f for w in edge.poll(10) for f in FrameDecoder().feed(w)]
    assert acks == [Frame(link.T_ACK, 0, 0 + 5)]


def test_new_frame_never_takes_the_seq_the_peer_is_acking() -> None:
    # The edge still advertises ack=1 from before the controller rebooted. The controller's
    # first frame must not be seq 1, or that stale ack would "acknowledge" it.
    mcu = LinkSession(0)
    mcu.on_frame(Frame(link.T_HEARTBEAT, 0, 1), 0)
    mcu.send(link.T_HELLO, b"boot", CLASS_EVENT)
    sent = [f for w in mcu.poll(0) for f in FrameDecoder().feed(w) if isinstance(f, Frame)]
    hello = [f for f in sent if f.frame_type == link.T_HELLO]
    assert hello[0].seq == 2
    mcu.on_frame(Frame(link.T_HEARTBEAT, 0, 1), 5)
    assert mcu.backlog() == 1  # the stale ack did not acknowledge the HELLO


def test_rebooted_controller_is_heard_and_nothing_is_lost() -> None:
    mcu, edge = End(LinkSession(0)), End(LinkSession(0))
    mcu.session.send(link.T_HELLO, b"boot-1", CLASS_EVENT)
    mcu.session.send(link.T_EVENT, b"door", CLASS_EVENT)
    now = run(mcu, edge, 0, 1000)
    # Reboot: a brand new session on the controller, whose seq starts again at 1.
    mcu = End(LinkSession(now))
    mcu.session.send(link.T_HELLO, b"boot-2", CLASS_EVENT)
    mcu.session.send(link.T_EVENT, b"bell", CLASS_ALARM)
    edge.session.send(link.T_COMMAND, b"lamp-on", CLASS_EVENT)
    run(mcu, edge, now, now + 2000)
    assert payloads(edge) == [b"boot-1", b"door", b"bell", b"boot-2"]
    assert payloads(mcu) == [b"lamp-on"]


def test_alarm_overtakes_queued_telemetry() -> None:
    mcu, edge = End(LinkSession(0)), End(LinkSession(0))
    for i in range(5):
        mcu.session.send(link.T_TELEMETRY, b"t%d" % i, CLASS_TELEMETRY)
    mcu.session.send(link.T_EVENT, b"bell", CLASS_ALARM)
    run(mcu, edge, 0, 2000)
    assert payloads(edge) == [b"bell", b"t0", b"t1", b"t2", b"t3", b"t4"]


def test_full_queue_drops_oldest_telemetry_then_events_never_alarms() -> None:
    mcu = LinkSession(0, queue_limit=4)
    assert mcu.send(link.T_TELEMETRY, b"t1", CLASS_TELEMETRY)
    assert mcu.send(link.T_TELEMETRY, b"t2", CLASS_TELEMETRY)
    assert mcu.send(link.T_EVENT, b"e1", CLASS_EVENT)
    assert mcu.send(link.T_EVENT, b"bell1", CLASS_ALARM)
    assert mcu.send(link.T_EVENT, b"e2", CLASS_EVENT)  # t1 goes
    assert mcu.send(link.T_EVENT, b"bell2", CLASS_ALARM)  # t2 goes
    assert mcu.send(link.T_EVENT, b"e3", CLASS_EVENT)  # no telemetry left: e1 goes
    assert not mcu.send(link.T_TELEMETRY, b"t3", CLASS_TELEMETRY)  # nothing cheaper to drop
    assert mcu.send(link.T_EVENT, b"bell3", CLASS_ALARM)  # alarms go past the limit
    assert mcu.dropped_telemetry == 3
    assert mcu.dropped_events == 1
    edge = End(LinkSession(0))
    run(End(mcu), edge, 0, 3000)
    assert payloads(edge) == [b"bell1", b"bell2", b"bell3", b"e2", b"e3"]


def test_silent_peer_is_declared_down_and_heartbeats_go_on() -> None:
    mcu = LinkSession(0, heartbeat_ms=1000, dead_after_ms=3500)
    mcu.on_frame(Frame(link.T_HEARTBEAT, 0, 0), 0)
    assert mcu.peer_alive(3499)
    beats = 0
    for now in range(0, 10_000, 50):
        beats += sum(1 for w in mcu.poll(now) for _ in FrameDecoder().feed(w))
    assert not mcu.peer_alive(10_000)
    assert mcu.link_downs == 1
    assert beats == 10  # one heartbeat a second, whether or not the peer answers


def test_millisecond_counter_wrapping_does_not_stall_the_link() -> None:
    start = (1 << 30) - 700  # MicroPython's ticks_ms() wraps at 2**30 on the RP2040
    mcu, edge = End(LinkSession(start)), End(LinkSession(start))
    for i in range(10):
        mcu.session.send(link.T_EVENT, b"e%d" % i, CLASS_EVENT)
    for now in range(start, start + 3000, 10):
        exchange(mcu, edge, now & ((1 << 30) - 1))
    assert payloads(edge) == [b"e%d" % i for i in range(10)]


# --- a lossy, noisy serial line ----------------------------------------------------------


def damage(wire: bytes, rng: random.Random, loss: float) -> bytes:
    """What a bad UART does: lose a write, repeat it, flip a bit inside a frame, add noise."""
    roll = rng.random()
    if roll < loss:
        return b""
    if roll < loss * 1.5:
        wire = wire + wire
    elif roll < loss * 2 and len(wire) > 2:
        # One flipped bit inside the CRC-protected body: always detected by CRC-16.
        blocks = wire.split(b"\x00")
        i = next(i for i, b in enumerate(blocks) if b)
        body = bytearray(link.cobs_decode(blocks[i]) or b"")
        body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        blocks[i] = link.cobs_encode(bytes(body))
        wire = b"\x00".join(blocks)
    if rng.random() < loss:
        wire = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 8))) + wire
    return wire


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0.0, 0.45),
    sends=st.lists(st.sampled_from([CLASS_ALARM, CLASS_EVENT, CLASS_TELEMETRY]), min_size=1, max_size=25),
    confirm=st.booleans(),
)
def test_over_a_bad_line_every_frame_arrives_exactly_once_in_order(
    seed: int, loss: float, sends: list[int], confirm: bool
) -> None:
    rng = random.Random(seed)
    mcu = End(LinkSession(0, queue_limit=64))
    edge = End(LinkSession(0, queue_limit=64, confirm_delivery=confirm), store_at_once=True)
    for i, klass in enumerate(sends):
        mcu.session.send(link.T_EVENT, b"m%d" % i, klass)
        edge.session.send(link.T_COMMAND, b"c%d" % i, CLASS_EVENT)
    now = 0
    for now in range(0, 60_000, 10):  # one minute of a bad line
        edge.receive(damage(b"".join(mcu.session.poll(now)), rng, loss), now)
        mcu.receive(damage(b"".join(edge.session.poll(now)), rng, loss), now)
    run(mcu, edge, now, now + 30_000)  # then the line heals
    got = payloads(edge)
    assert sorted(got) == sorted(b"m%d" % i for i in range(len(sends)))  # each exactly once
    for klass in (CLASS_ALARM, CLASS_EVENT, CLASS_TELEMETRY):
        mine = [b"m%d" % i for i, k in enumerate(sends) if k == klass]
        assert [p for p in got if p in mine] == mine  # FIFO within a class
    assert payloads(mcu) == [b"c%d" % i for i in range(len(sends))]


# --- acknowledging only what the application has stored ------------------------------------


def test_with_confirm_delivery_nothing_is_acked_until_the_edge_has_stored_it() -> None:
    mcu, edge = End(LinkSession(0)), End(LinkSession(0, confirm_delivery=True))
    mcu.session.send(link.T_EVENT, b"bell", CLASS_ALARM)
    now = run(mcu, edge, 0, 1000)
    assert payloads(edge) == [b"bell"]  # delivered once...
    assert mcu.session.backlog() == 1  # ...but not acknowledged: the controller keeps it
    assert mcu.session.retransmits > 0
    assert edge.session.duplicates > 0
    edge.session.confirm(edge.delivered[0].seq)  # now it is on flash
    run(mcu, edge, now, now + 500)
    assert mcu.session.backlog() == 0
    assert payloads(edge) == [b"bell"]


def test_an_edge_that_dies_before_storing_gets_the_press_again_after_restart() -> None:
    mcu = End(LinkSession(0))
    edge = End(LinkSession(0, confirm_delivery=True))
    mcu.session.send(link.T_EVENT, b"bell", CLASS_ALARM)
    now = run(mcu, edge, 0, 500)
    assert payloads(edge) == [b"bell"]  # received, then the edge process is killed
    restarted = End(LinkSession(now, confirm_delivery=True))
    run(mcu, restarted, now, now + 3000)
    assert payloads(restarted) == [b"bell"]
    restarted.session.confirm(restarted.delivered[0].seq)
    run(mcu, restarted, now + 3000, now + 3500)
    assert mcu.session.backlog() == 0


def test_confirming_a_frame_that_is_not_the_last_one_delivered_does_nothing() -> None:
    edge = LinkSession(0, confirm_delivery=True)
    edge.on_frame(Frame(link.T_EVENT, 5, 0, b"bell"), 0)
    edge.confirm(4)
    edge.confirm(0)
    frames = [f for w in edge.poll(0) for f in FrameDecoder().feed(w)]
    assert all(isinstance(f, Frame) and f.ack == 0 for f in frames)
    edge.confirm(5)
    assert [f for w in edge.poll(1) for f in FrameDecoder().feed(w)] == [Frame(link.T_ACK, 0, 5)]
