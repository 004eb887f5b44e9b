"""The edge agent's end of the serial link to the pole controller: an asyncio shell around the
sans-io core protocols.link (FrameDecoder + LinkSession) and the payload decoder
(edge.controller.payloads). Delivers typed controller messages and link status events on a
queue, sends commands and waits for their results, and counts everything.

The only module under edge/ that imports pyserial (SerialTransport); tests inject a
ByteTransport instead (edge.controller.fake)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import serial  # type: ignore[import-untyped]

from protocols import link

from .errors import CommandNotQueued, CommandTimeout, LinkClosed, PayloadRejected, TransportError
from .payloads import (
    CommandId,
    CommandResult,
    ControllerMessage,
    Hello,
    command_header,
    decode_controller_payload,
)

log = logging.getLogger(__name__)

BAUD = 115200
READ_CHUNK = 4096
_TICKS_MASK = (1 << 30) - 1


def monotonic_ms() -> int:
    # LinkSession compares ticks modulo 2**30, so the mask changes nothing but the range.
    return (time.monotonic_ns() // 1_000_000) & _TICKS_MASK


class ByteTransport(Protocol):
    """A byte pipe to the controller. read() never blocks: b"" when nothing arrived.
    Both raise TransportError when the pipe is gone."""

    def read(self, max_bytes: int) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """The controller's UART through pyserial, 115200 8N1.

    Non-blocking reads (timeout=0) polled by ControllerLink's pump, not a reader thread: the
    session must be polled every few ms anyway (retransmit and heartbeat timers), so one
    loop does both at the same cadence, and there is no blocked executor thread to unstick
    when the link closes (a pyserial read cannot be cancelled). Writes are frames of at
    most 250 bytes that the tty buffer takes at once; write_timeout bounds a wedged line."""

    def __init__(self, port: str, *, baudrate: int = BAUD, write_timeout: float = 0.5) -> None:
        self.port = port
        try:
            self._serial = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=write_timeout)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"cannot open {port}: {exc}", port=port) from exc

    def read(self, max_bytes: int) -> bytes:
        try:
            data: bytes = self._serial.read(max_bytes)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"reading {self.port}: {exc}", port=self.port) from exc
        return data

    def write(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"writing {self.port}: {exc}", port=self.port) from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._serial.close()


# --- Status events, delivered on the same queue as controller messages -----------------------


@dataclass(frozen=True)
class LinkUp:
    """The controller is heard again (or for the first time)."""

    at_ms: int


@dataclass(frozen=True)
class LinkDown:
    """Nothing heard from the controller for the session's dead_after_ms."""

    at_ms: int


@dataclass(frozen=True)
class ControllerReset:
    """A HELLO arrived: the controller (re)started, for the reason it gives."""

    at_ms: int
    hello: Hello

    @property
    def cause(self) -> str:
        return self.hello.rst

    @property
    def firmware(self) -> str:
        return self.hello.fw


LinkStatus = LinkUp | LinkDown | ControllerReset
LinkItem = ControllerMessage | LinkStatus


@dataclass
class LinkCounters:
    frames: int = 0  # intact frames decoded
    decode_errors: dict[str, int] = field(default_factory=dict)  # by protocols.link reason
    payload_rejections: dict[str, int] = field(default_factory=dict)  # by PayloadRejected.reason
    delivered: int = 0  # controller messages put on the queue (HELLOs as ControllerReset)
    retransmits: int = 0
    duplicates: int = 0
    link_downs: int = 0
    controller_resets: int = 0
    commands: int = 0
    command_timeouts: int = 0
    unmatched_results: int = 0  # results no send_command() waited for (delivered on the queue)
    transport_errors: int = 0


class ControllerLink:
    """Use as `async with ControllerLink(port="/dev/ttyAMA0") as controller:`; then read
    `controller.items` and call `await controller.send_command(payloads.status(id=1))`."""

    def __init__(
        self,
        *,
        port: str | None = None,
        transport: ByteTransport | None = None,
        clock: Callable[[], int] = monotonic_ms,
        poll_interval: float = 0.005,
        reopen_interval: float = 1.0,
        command_timeout: float = 5.0,
        rto_ms: int = 200,
        rto_max_ms: int = 3000,
        heartbeat_ms: int = 1000,
        dead_after_ms: int = 3500,
        confirm_delivery: bool = False,
    ) -> None:
        # confirm_delivery: the controller's frames that reach `items` are acknowledged on the
        # link only when the consumer calls confirm_stored() (after the outbox committed what
        # they carry). Until then the controller keeps retransmitting them, so an agent that
        # dies in between gets them again after its restart.
        if (port is None) == (transport is None):
            raise ValueError("give exactly one of port= (a serial device path) or transport=")
        if poll_interval <= 0 or reopen_interval <= 0 or command_timeout <= 0:
            raise ValueError("poll_interval, reopen_interval and command_timeout must be > 0 seconds")
        self.port = port
        self._transport: ByteTransport | None = transport
        self._clock = clock
        self._poll_interval = poll_interval
        self._reopen_interval = reopen_interval
        self.command_timeout = command_timeout
        self._decoder = link.FrameDecoder()
        self._session = link.LinkSession(
            clock(),
            rto_ms=rto_ms,
            rto_max_ms=rto_max_ms,
            heartbeat_ms=heartbeat_ms,
            dead_after_ms=dead_after_ms,
            confirm_delivery=confirm_delivery,
        )
        # The frame behind an item on `items` that its consumer has yet to confirm (at most one).
        self._unconfirmed_seq = 0
        self._unconfirmed_item: LinkItem | None = None
        self._peer_up = False
        self._transport_healthy = True
        self._pending: dict[CommandId, asyncio.Future[CommandResult]] = {}
        self._hello_waiters: list[asyncio.Future[Hello]] = []
        # The last few HELLOs with the monotonic time they were decoded, for a wait that
        # starts after the restart it waits for (next_hello's `since`).
        self._recent_hellos: collections.deque[tuple[float, Hello]] = collections.deque(maxlen=8)
        self._counters = LinkCounters()
        self._task: asyncio.Task[None] | None = None
        # Unbounded on purpose: a bell press acknowledged on the link must never be dropped
        # here. The consumer (the outbox) drains it as fast as the link can fill it.
        self.items: asyncio.Queue[LinkItem] = asyncio.Queue()

    # -- lifecycle

    async def __aenter__(self) -> Self:
        if self._transport is None:
            assert self.port is not None
            self._transport = SerialTransport(self.port)  # a missing port fails here, loudly
        self._task = asyncio.create_task(self._pump(), name="controller-link-pump")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # wait(), not `await` under suppress(CancelledError), which would also swallow a
            # cancel of the caller landing meanwhile (edge.uplink.mqtt has the same note).
            await asyncio.wait({self._task})
            self._task = None
        if self._transport is not None:
            self._transport.close()
            if self.port is not None:
                self._transport = None
        self._fail_pending()

    def _fail_pending(self) -> None:
        for command_id, future in self._pending.items():
            if not future.done():
                future.set_exception(LinkClosed(command_id=command_id))

    @property
    def peer_up(self) -> bool:
        return self._peer_up

    async def next_item(self) -> LinkItem:
        return await self.items.get()

    # -- commands

    async def send_command(self, payload: bytes, *, timeout: float | None = None) -> CommandResult:
        """Send a command built by edge.controller.payloads; return the controller's RESULT
        with the same id (ok or not: read `.ok` and `.err`). Raises CommandTimeout."""
        name, command_id = command_header(payload)
        if command_id in self._pending:
            raise ValueError(f"command id {command_id!r} is already waiting for its result")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        if not self._session.send(link.T_COMMAND, payload, link.CLASS_EVENT):
            raise CommandNotQueued(command=name, command_id=command_id)
        self._counters.commands += 1
        self._pending[command_id] = future
        limit = self.command_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            self._counters.command_timeouts += 1
            raise CommandTimeout(command=name, command_id=command_id, timeout=limit) from None
        finally:
            self._pending.pop(command_id, None)

    async def next_hello(self, timeout: float, *, since: float | None = None) -> Hello | None:
        """The HELLO of the controller's next start, or None when none comes within `timeout`
        seconds. The firmware update (edge.controller.firmware_update) waits on it for the
        version the controller comes back with; the HELLO still goes on `items` as a
        ControllerReset. Only HELLOs decoded after the call count, or, with `since` (a
        time.monotonic() value), the first one decoded at or after that time: a controller
        that comes up fast may say HELLO before the caller gets round to asking."""
        if since is not None:
            for decoded_at, hello in self._recent_hellos:
                if decoded_at >= since:
                    return hello
        waiter: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self._hello_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            return None
        finally:
            if waiter in self._hello_waiters:
                self._hello_waiters.remove(waiter)

    # -- counters

    def counters(self) -> LinkCounters:
        """A snapshot: the session's and decoder's counters merged with the shell's own."""
        own = self._counters
        session = self._session
        return LinkCounters(
            frames=self._decoder.frames,
            decode_errors=dict(self._decoder.error_counts),
            payload_rejections=dict(own.payload_rejections),
            delivered=own.delivered,
            retransmits=session.retransmits,
            duplicates=session.duplicates,
            link_downs=session.link_downs,
            controller_resets=own.controller_resets,
            commands=own.commands,
            command_timeouts=own.command_timeouts,
            unmatched_results=own.unmatched_results,
            transport_errors=own.transport_errors,
        )

    # -- the pump: read, feed, poll, write

    async def _pump(self) -> None:
        try:
            await self._pump_forever()
        except Exception:
            # A bug, not a line fault (those are values or TransportError): say so, and do
            # not leave command callers waiting for results that cannot come.
            log.exception("controller link pump failed")
            self._fail_pending()
            raise

    async def _pump_forever(self) -> None:
        while True:
            if self._transport is None:
                await asyncio.sleep(self._reopen_interval)
                self._reopen()
                continue
            try:
                self.step()
            except TransportError as exc:
                self._transport_failed(exc)
            await asyncio.sleep(self._poll_interval)

    def step(self) -> None:
        """One round of the pump (public so a test can drive the link without the task)."""
        transport = self._transport
        if transport is None:
            return
        now = self._clock()
        data = transport.read(READ_CHUNK)
        self._transport_healthy = True
        if data:
            self._on_bytes(data, now)
        for chunk in self._session.poll(now):
            transport.write(chunk)
        self._note_liveness(now)

    def _on_bytes(self, data: bytes, now: int) -> None:
        for item in self._decoder.feed(data):
            if isinstance(item, link.FrameError):
                log.debug("controller link: %s", item.detail)
                continue
            frame = self._session.on_frame(item, now)
            self._note_liveness(now)
            if frame is not None:
                self._on_frame(frame, now)

    def confirm_stored(self, item: LinkItem) -> None:
        """The consumer has stored `item` (taken from `items`): acknowledge its frame.

        Stop-and-wait means at most one controller frame is ever unconfirmed; confirming any
        other item (a status event, an item already confirmed) does nothing."""
        if self._unconfirmed_seq and item is self._unconfirmed_item:
            self._confirm()

    def _confirm(self) -> None:
        self._session.confirm(self._unconfirmed_seq)
        self._unconfirmed_seq = 0
        self._unconfirmed_item = None

    def _on_frame(self, frame: link.Frame, now: int) -> None:
        message = decode_controller_payload(frame.frame_type, frame.payload)
        queued = self._route(message, now)
        if not frame.seq or not self._session.confirm_delivery:
            return  # unsequenced, or the session acknowledged it already
        self._unconfirmed_seq = frame.seq
        self._unconfirmed_item = queued
        if queued is None:
            self._confirm()  # nothing for the consumer to store: rejected, or a result

    def _route(self, message: ControllerMessage | PayloadRejected, now: int) -> LinkItem | None:
        # The item put on `items`, if any.
        if isinstance(message, PayloadRejected):
            counts = self._counters.payload_rejections
            counts[message.reason] = counts.get(message.reason, 0) + 1
            log.warning("controller payload rejected: %s", message)
            return None
        if isinstance(message, Hello):
            self._counters.controller_resets += 1
            self._recent_hellos.append((time.monotonic(), message))
            for waiter in self._hello_waiters:
                if not waiter.done():
                    waiter.set_result(message)
            self._hello_waiters.clear()
            reset = ControllerReset(now, message)
            self._put(reset)
            return reset
        if isinstance(message, CommandResult) and message.id is not None:
            future = self._pending.get(message.id)
            if future is not None and not future.done():
                future.set_result(message)
                return None
        if isinstance(message, CommandResult):
            self._counters.unmatched_results += 1
        self._put(message)
        return message

    def _put(self, item: LinkItem) -> None:
        if not isinstance(item, LinkUp | LinkDown):
            self._counters.delivered += 1
        self.items.put_nowait(item)

    def _note_liveness(self, now: int) -> None:
        up = self._session.peer_alive(now)
        if up != self._peer_up:
            self._peer_up = up
            self._put(LinkUp(now) if up else LinkDown(now))

    def _transport_failed(self, exc: TransportError) -> None:
        self._counters.transport_errors += 1
        # Once per outage, not once per poll: a dead injected transport fails every round.
        if self._transport_healthy:
            log.warning("controller link: %s", exc)
        self._transport_healthy = False
        self._note_liveness(self._clock())  # step() stopped before its liveness check
        if self.port is None:
            # An injected transport cannot be reopened here: its owner decides. Liveness
            # still runs, so LinkDown follows dead_after_ms later.
            return
        assert self._transport is not None
        self._transport.close()
        self._transport = None

    def _reopen(self) -> None:
        self._note_liveness(self._clock())
        assert self.port is not None
        try:
            self._transport = SerialTransport(self.port)
        except TransportError as exc:
            self._counters.transport_errors += 1
            log.debug("controller link: %s", exc)
