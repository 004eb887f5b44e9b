# Serial link between the pole controller (MicroPython, firmware/) and the edge agent
# (CPython, edge/): framing, CRC, an incremental decoder and the ack/retransmit session.
#
# This one file runs unchanged on CPython and on MicroPython; the firmware deployment copies
# it byte for byte. So it keeps to the common subset: no typing/dataclasses/enum/f-string
# tricks, annotations only with builtin types (MicroPython parses and ignores them), no
# `del buf[:]`, and comments rather than docstrings (docstrings cost flash on the MCU).
#
# Wire layout (docs/protocols.md has the full table):
#
#   0x00 | COBS( ver | type | seq | ack | len | payload... | crc16_hi | crc16_lo ) | 0x00
#
# CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection) over ver..payload. `len` is
# the payload length: a frame cut short (a reboot mid-frame) is refused for certain, not
# only with the CRC's odds (docs/adr/0001).
# A leading and a trailing 0x00 surround every frame, so line noise between frames is cut
# off by the next frame's leading delimiter instead of corrupting that frame.

VERSION = 1

HEADER_LEN = 5
CRC_LEN = 2
MAX_PAYLOAD = 240
MAX_BODY = HEADER_LEN + MAX_PAYLOAD + CRC_LEN
# COBS adds one byte per started run of 254 bytes.
MAX_ENCODED = MAX_BODY + 1 + MAX_BODY // 254

# Frame types. Sequenced types (seq 1..255) are delivered once and acknowledged;
# HEARTBEAT and ACK are unsequenced (seq 0) and only carry the ack field.
T_HELLO = 0x01  # first frame of a session: firmware version, reset cause
T_HEARTBEAT = 0x02
T_ACK = 0x03
T_EVENT = 0x10  # bell, door, bell circuit, supply, temperature thresholds
T_TELEMETRY = 0x11  # periodic readings; droppable when the queue is full
T_COMMAND = 0x20  # edge -> controller: lamp, self-test, status, reboot
T_RESULT = 0x21  # controller -> edge: outcome of a command

FRAME_TYPES = (T_HELLO, T_HEARTBEAT, T_ACK, T_EVENT, T_TELEMETRY, T_COMMAND, T_RESULT)
TYPE_NAMES = {
    T_HELLO: "hello",
    T_HEARTBEAT: "heartbeat",
    T_ACK: "ack",
    T_EVENT: "event",
    T_TELEMETRY: "telemetry",
    T_COMMAND: "command",
    T_RESULT: "result",
}

# Delivery classes of the outgoing queue: a lower class is sent first and dropped last.
CLASS_ALARM = 0  # bell presses: never dropped
CLASS_EVENT = 1  # dropped only when the queue holds nothing but alarms and events
CLASS_TELEMETRY = 2  # the oldest goes first when the queue is full


# --- CRC-16/CCITT-FALSE ------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
            c &= 0xFFFF
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_py(data: bytes, crc: int = 0xFFFF) -> int:
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ b) & 0xFF]
    return crc


try:  # CPython has the same CRC in C; MicroPython's binascii does not.
    from binascii import crc_hqx as _crc_fast

    _HAVE_FAST_CRC = True
except ImportError:
    _HAVE_FAST_CRC = False


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    if _HAVE_FAST_CRC:
        return _crc_fast(data, crc)
    return crc16_py(data, crc)


# --- COBS ----------------------------------------------------------------------------------


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    n = len(data)
    start = 0
    while True:
        zero = data.find(b"\x00", start)
        end = n if zero < 0 else zero
        long_run = False
        while end - start >= 254:
            out.append(0xFF)
            out.extend(data[start : start + 254])
            start += 254
            long_run = True
        if zero < 0:
            # A run of exactly k*254 bytes at the very end needs no closing block.
            if not (long_run and start == end):
                out.append(end - start + 1)
                out.extend(data[start:end])
            break
        out.append(end - start + 1)
        out.extend(data[start:end])
        start = zero + 1
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    # None means "not valid COBS" (a zero code byte, or a block running past the end).
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        code = data[i]
        if code == 0:
            return None
        end = i + code
        if end > n:
            return None
        out.extend(data[i + 1 : end])
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --- Frames and decode errors -----------------------------------------------------------


class Frame:
    def __init__(self, frame_type: int, seq: int, ack: int, payload: bytes = b"") -> None:
        self.frame_type = frame_type
        self.seq = seq
        self.ack = ack
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Frame)
            and self.frame_type == other.frame_type
            and self.seq == other.seq
            and self.ack == other.ack
            and self.payload == other.payload
        )

    def __repr__(self) -> str:
        name = TYPE_NAMES.get(self.frame_type, hex(self.frame_type))
        return "Frame(%s seq=%d ack=%d payload=%r)" % (name, self.seq, self.ack, self.payload)


# Decode errors are returned as values by the decoder, never raised; they are Exception
# subclasses so a caller may raise one if that suits it. `reason` is a stable short code
# (counted in telemetry), `detail` a sentence for a human.
class FrameError(Exception):
    reason = "frame-error"

    def __init__(self, detail: str, size: int = 0) -> None:
        super().__init__(detail)
        self.detail = detail
        self.size = size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrameError) and type(self) is type(other) and self.detail == other.detail

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.detail)


class TruncatedFrame(FrameError):
    reason = "truncated"


class OversizedFrame(FrameError):
    reason = "oversized"


class BadCobs(FrameError):
    reason = "bad-cobs"


class BadLength(FrameError):
    reason = "bad-length"


class BadCrc(FrameError):
    reason = "bad-crc"


class UnknownVersion(FrameError):
    reason = "unknown-version"


class UnknownType(FrameError):
    reason = "unknown-type"


ERROR_REASONS = (
    TruncatedFrame.reason,
    OversizedFrame.reason,
    BadCobs.reason,
    BadLength.reason,
    BadCrc.reason,
    UnknownVersion.reason,
    UnknownType.reason,
)


def encode_frame(frame_type: int, seq: int, ack: int, payload: bytes = b"") -> bytes:
    # Raises ValueError for arguments no peer could decode: that is a bug in the caller,
    # not bad input from the wire.
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload is %d bytes, at most %d fit a frame" % (len(payload), MAX_PAYLOAD))
    if frame_type not in TYPE_NAMES:
        raise ValueError("frame type %r is not defined" % (frame_type,))
    if not (0 <= seq <= 255 and 0 <= ack <= 255):
        raise ValueError("seq and ack are single bytes (0..255)")
    if (seq == 0) != (frame_type in (T_HEARTBEAT, T_ACK)):
        raise ValueError("heartbeat and ack frames carry seq 0, every other type seq 1..255")
    body = bytearray(HEADER_LEN + len(payload) + CRC_LEN)
    body[0] = VERSION
    body[1] = frame_type
    body[2] = seq
    body[3] = ack
    body[4] = len(payload)
    body[HEADER_LEN : HEADER_LEN + len(payload)] = payload
    crc = crc16(bytes(body[: HEADER_LEN + len(payload)]))
    body[-2] = crc >> 8
    body[-1] = crc & 0xFF
    return b"\x00" + cobs_encode(bytes(body)) + b"\x00"


def decode_frame(encoded: bytes) -> Frame | FrameError:
    # Decodes one COBS block, without its delimiters.
    size = len(encoded)
    if size > MAX_ENCODED:
        return OversizedFrame("frame of %d bytes exceeds %d" % (size, MAX_ENCODED), size)
    body = cobs_decode(encoded)
    if body is None:
        return BadCobs("invalid COBS block structure", size)
    if len(body) < HEADER_LEN + CRC_LEN:
        return TruncatedFrame(
            "frame body is %d bytes, a frame needs at least %d" % (len(body), HEADER_LEN + CRC_LEN),
            size,
        )
    arrived = len(body) - HEADER_LEN - CRC_LEN
    if body[4] > arrived:
        return TruncatedFrame("frame says %d payload bytes, %d arrived" % (body[4], arrived), size)
    if body[4] < arrived:
        return BadLength("frame says %d payload bytes, %d arrived" % (body[4], arrived), size)
    expected = (body[-2] << 8) | body[-1]
    actual = crc16(body[:-2])
    if actual != expected:
        return BadCrc("CRC is 0x%04x, frame says 0x%04x" % (actual, expected), size)
    if body[0] != VERSION:
        return UnknownVersion("link version %d, this side speaks %d" % (body[0], VERSION), size)
    if body[1] not in TYPE_NAMES:
        return UnknownType("frame type 0x%02x is not defined" % body[1], size)
    return Frame(body[1], body[2], body[3], body[HEADER_LEN:-CRC_LEN])


class FrameDecoder:
    # Incremental decoder: feed() whatever bytes the UART produced, get back complete frames
    # and errors in order. A partial frame stays buffered ("need more"); a malformed one comes
    # back as a FrameError and the decoder resynchronises at the next 0x00. Memory is bounded
    # by MAX_ENCODED: a run without delimiter longer than that is reported once and skipped.

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False
        self.frames = 0
        self.errors = 0
        self.error_counts: dict[str, int] = {}

    def _error(self, err: FrameError, out: list[Frame | FrameError]) -> None:
        self.errors += 1
        self.error_counts[err.reason] = self.error_counts.get(err.reason, 0) + 1
        out.append(err)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        n = len(data)
        start = 0
        while start < n:
            zero = data.find(b"\x00", start)
            if zero < 0:
                if not self._skipping:
                    if len(self._buf) + n - start > MAX_ENCODED:
                        size = len(self._buf) + n - start
                        self._buf = bytearray()
                        self._skipping = True
                        self._error(
                            OversizedFrame("more than %d bytes without a delimiter" % MAX_ENCODED, size),
                            out,
                        )
                    else:
                        self._buf.extend(data[start:])
                break
            if self._skipping:
                self._skipping = False
            elif self._buf or zero > start:
                if self._buf:
                    self._buf.extend(data[start:zero])
                    block = bytes(self._buf)
                    self._buf = bytearray()
                else:
                    block = data[start:zero]
                result = decode_frame(block)
                if isinstance(result, Frame):
                    self.frames += 1
                    out.append(result)
                else:
                    self._error(result, out)
            start = zero + 1
        return out

    def pending(self) -> int:
        # Bytes of an unfinished frame held back, waiting for its delimiter.
        return len(self._buf)


# --- Session: acks, retransmits, duplicates, liveness -------------------------------------
#
# Stop-and-wait: one sequenced frame in flight per direction. At 115200 baud (8N1) a bell
# event of ~60 bytes takes ~5 ms on the wire and the largest frame ~22 ms, so this carries
# far more than a pole produces, and it keeps the rules small enough to check by hand:
#
# * A sequenced frame carries seq 1..255. The receiver accepts it unless seq equals the last
#   seq it accepted (then it is a retransmission: acknowledged again, not delivered again).
# * Every frame carries `ack` = the last seq this side accepted (0: none yet).
# * The sender retransmits the frame in flight every `rto` ms (doubling up to rto_max) until
#   an ack names its seq. Nothing is ever given up: a bell press waits for the edge.
# * A side sends sequenced frames only while it hears its peer, and never picks a seq equal
#   to the ack its peer is advertising. So a stale ack (from before a reboot of either side)
#   can never acknowledge a new frame, and a rebooted peer's HELLO is never taken for a
#   duplicate.
# * A receiver made with confirm_delivery acknowledges a frame only when the application
#   calls confirm(seq) (the edge: once the frame's content is on flash). Until then the
#   sender retransmits and duplicates are not delivered again; a receiver that dies before
#   confirming gets the frame again after it restarts.
# * Either side sends HEARTBEAT when it has been quiet for `heartbeat_ms`; a peer not heard
#   for `dead_after_ms` is down. Queued frames wait (bounded) and go when it returns.
#
# Time is injected as a millisecond counter; differences are taken modulo 2**30 so the
# MicroPython ticks_ms() counter may be passed as it is.

_TICKS_PERIOD = 1 << 30
_TICKS_HALF = _TICKS_PERIOD >> 1


def ticks_diff(a: int, b: int) -> int:
    d = (a - b) & (_TICKS_PERIOD - 1)
    if d >= _TICKS_HALF:
        d -= _TICKS_PERIOD
    return d


class _Outgoing:
    def __init__(self, klass: int, frame_type: int, payload: bytes) -> None:
        self.klass = klass
        self.frame_type = frame_type
        self.payload = payload


class LinkSession:
    def __init__(
        self,
        now: int,
        queue_limit: int = 32,
        rto_ms: int = 200,
        rto_max_ms: int = 3000,
        heartbeat_ms: int = 1000,
        dead_after_ms: int = 3500,
        confirm_delivery: bool = False,
    ) -> None:
        # confirm_delivery: acknowledge a frame only when the application calls confirm(seq),
        # e.g. once the edge has made a bell press durable. Until then the peer keeps
        # retransmitting, so a crash between receiving and storing loses nothing.
        self.confirm_delivery = confirm_delivery
        self.queue_limit = queue_limit
        self.rto_ms = rto_ms
        self.rto_max_ms = rto_max_ms
        self.heartbeat_ms = heartbeat_ms
        self.dead_after_ms = dead_after_ms
        # Outgoing: FIFO within a delivery class, lower class first.
        self._queue: list[_Outgoing] = []
        self._inflight: _Outgoing | None = None
        self._inflight_seq = 0
        self._sent_at = now
        self._rto = rto_ms
        self._next_seq = 1
        self._last_tx = now - heartbeat_ms  # so the first poll sends a heartbeat at once
        # Incoming.
        self._last_rx_seq = 0  # last seq accepted: duplicates are told by it
        self._ack_seq = 0  # the seq this side acknowledges in every frame it sends
        self._ack_due = False
        self._peer_ack = -1  # ack the peer advertises; -1 until heard
        self._last_heard = now
        self.peer_up = False
        # Counters, reported in telemetry.
        self.sent = 0
        self.acked = 0
        self.retransmits = 0
        self.duplicates = 0
        self.delivered = 0
        self.dropped_telemetry = 0
        self.dropped_events = 0
        self.link_downs = 0

    # -- outgoing

    def send(self, frame_type: int, payload: bytes, klass: int) -> bool:
        # Queue a sequenced frame. Returns False when it was dropped at once (queue full of
        # more important frames). Alarms are always queued, past the limit if need be.
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("payload is %d bytes, at most %d fit a frame" % (len(payload), MAX_PAYLOAD))
        queue = self._queue
        if len(queue) >= self.queue_limit:
            victim = self._oldest(CLASS_TELEMETRY)
            if victim < 0 and klass == CLASS_EVENT:
                victim = self._oldest(CLASS_EVENT)
            if victim >= 0:
                self._count_drop(queue.pop(victim).klass)
            elif klass != CLASS_ALARM:
                self._count_drop(klass)
                return False
        queue.append(_Outgoing(klass, frame_type, payload))
        return True

    def _oldest(self, klass: int) -> int:
        for i, item in enumerate(self._queue):
            if item.klass == klass:
                return i
        return -1

    def _count_drop(self, klass: int) -> None:
        if klass == CLASS_TELEMETRY:
            self.dropped_telemetry += 1
        else:
            self.dropped_events += 1

    def backlog(self) -> int:
        return len(self._queue) + (1 if self._inflight is not None else 0)

    def _take_next(self) -> _Outgoing | None:
        queue = self._queue
        if not queue:
            return None
        best = 0
        for i, item in enumerate(queue):
            if item.klass < queue[best].klass:
                best = i
        return queue.pop(best)

    def _alloc_seq(self) -> int:
        seq = self._next_seq
        if seq == self._peer_ack:
            seq = seq % 255 + 1
        self._next_seq = seq % 255 + 1
        return seq

    def _encode(self, frame_type: int, seq: int, payload: bytes, now: int) -> bytes:
        self._ack_due = False
        self._last_tx = now
        return encode_frame(frame_type, seq, self._ack_seq, payload)

    # -- incoming

    def on_frame(self, frame: Frame, now: int) -> Frame | None:
        # Returns the frame if the application should act on it, None otherwise.
        self._last_heard = now
        if not self.peer_up:
            self.peer_up = True
        self._peer_ack = frame.ack
        if self._inflight is not None and frame.ack == self._inflight_seq:
            self._inflight = None
            self._rto = self.rto_ms
            self.acked += 1
        if frame.seq == 0:
            if frame.frame_type in (T_HEARTBEAT, T_ACK):
                return None
            return frame  # unsequenced data: delivered as is, not acknowledged
        if frame.seq == self._last_rx_seq:
            self.duplicates += 1
            if self._ack_seq == frame.seq:
                self._ack_due = True  # our ack was lost: say it again
            return None
        self._last_rx_seq = frame.seq
        self.delivered += 1
        if not self.confirm_delivery:
            self.confirm(frame.seq)
        return frame

    def confirm(self, seq: int) -> None:
        # The application has what frame `seq` carried (stored it, or decided to drop it):
        # acknowledge it. Only the last frame delivered can be pending (stop-and-wait).
        if seq == self._last_rx_seq and seq != 0:
            self._ack_seq = seq
            self._ack_due = True

    def peer_alive(self, now: int) -> bool:
        if self.peer_up and ticks_diff(now, self._last_heard) >= self.dead_after_ms:
            self.peer_up = False
            self.link_downs += 1
        return self.peer_up

    # -- timers

    def poll(self, now: int) -> list[bytes]:
        # Bytes to write to the UART now, in order. Call every few ms and after on_frame().
        out: list[bytes] = []
        alive = self.peer_alive(now)
        if alive:
            if self._inflight is None:
                item = self._take_next()
                if item is not None:
                    self._inflight = item
                    self._inflight_seq = self._alloc_seq()
                    self._sent_at = now
                    self._rto = self.rto_ms
                    self.sent += 1
                    out.append(self._encode(item.frame_type, self._inflight_seq, item.payload, now))
            elif ticks_diff(now, self._sent_at) >= self._rto:
                self._sent_at = now
                self._rto = min(self._rto * 2, self.rto_max_ms)
                self.retransmits += 1
                item = self._inflight
                out.append(self._encode(item.frame_type, self._inflight_seq, item.payload, now))
        if self._ack_due:
            out.append(self._encode(T_ACK, 0, b"", now))
        elif ticks_diff(now, self._last_tx) >= self.heartbeat_ms:
            out.append(self._encode(T_HEARTBEAT, 0, b"", now))
        return out
