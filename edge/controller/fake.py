"""A fake pole controller behind the ByteTransport interface, beside the real SerialTransport
(edge.controller.link): it speaks the real protocols.link session, so ControllerLink can be
tested without MicroPython or a pty. It is stepped by the link's own reads, on the link's
clock, so a test with an injected clock controls both ends of the line."""

from __future__ import annotations

import json
from collections.abc import Callable

from protocols import link

from .errors import TransportError


class FakeControllerTransport:
    """Plays the controller: sends HELLO on (re)start, acknowledges, answers commands with
    `{"cmd":..,"ok":true,"id":..,"t":..}` unless `answer_commands` is False. Tests add
    frames (`send`), raw bytes on the line (`inject`), silence (`mute`), a reset (`reset`)
    or an unplugged cable (`unplug`)."""

    def __init__(
        self,
        *,
        clock: Callable[[], int],
        firmware: str = "0.1.0",
        reset_cause: str = "power-on",
        answer_commands: bool = True,
    ) -> None:
        self._clock = clock
        self.firmware = firmware
        self.answer_commands = answer_commands
        self.muted = False  # neither hears nor speaks: a controller hung or powered off
        self.unplugged = False
        self.closed = False
        self.commands: list[bytes] = []  # command payloads delivered to the controller
        self._line = bytearray()  # bytes on their way to the edge
        self.reset(reset_cause)

    # -- what a test does to the controller

    def reset(self, cause: str = "watchdog") -> None:
        now = self._clock()
        self.session = link.LinkSession(now)
        self.decoder = link.FrameDecoder()
        self.send(
            link.T_HELLO, b'{"fw":"%s","rst":"%s","t":%d}' % (self.firmware.encode(), cause.encode(), now)
        )

    def send(self, frame_type: int, payload: bytes, klass: int = link.CLASS_EVENT) -> None:
        self.session.send(frame_type, payload, klass)

    def inject(self, raw: bytes) -> None:
        """Bytes straight onto the line, past the session: noise, hand-made frames."""
        self._line += raw

    def mute(self, muted: bool = True) -> None:
        self.muted = muted

    def unplug(self) -> None:
        self.unplugged = True

    # -- ByteTransport

    def read(self, max_bytes: int) -> bytes:
        self._check()
        if not self.muted:
            for chunk in self.session.poll(self._clock()):
                self._line += chunk
        data = bytes(self._line[:max_bytes])
        del self._line[:max_bytes]
        return data

    def write(self, data: bytes) -> None:
        self._check()
        if self.muted:
            return
        now = self._clock()
        for item in self.decoder.feed(data):
            if not isinstance(item, link.Frame):
                continue
            frame = self.session.on_frame(item, now)
            if frame is not None and frame.frame_type == link.T_COMMAND:
                self.commands.append(frame.payload)
                if self.answer_commands:
                    self._answer(frame.payload, now)

    def close(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.unplugged:
            raise TransportError("fake controller unplugged", port="fake")

    def _answer(self, payload: bytes, now: int) -> None:
        command = json.loads(payload)
        result = {"cmd": command.get("cmd"), "ok": True, "id": command.get("id"), "t": now}
        self.send(link.T_RESULT, json.dumps(result).encode())
