"""Errors of edge.controller, details as attributes. Payload rejections are returned as values
(counted by the link), the others are raised to the caller of ControllerLink."""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every error about the pole controller or its link."""


class PayloadRejected(ControllerError):
    """A frame arrived intact but its payload is not what the controller's vocabulary allows.

    `reason` is a stable short code (counted): "not-json", "invalid", "unknown-kind",
    "unexpected-frame-type"."""

    def __init__(self, reason: str, detail: str, *, frame_type: int, payload: bytes) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.frame_type = frame_type
        self.payload = payload[:64]  # enough to recognise it in a log, bounded

    def _key(self) -> tuple[str, str, int, bytes]:
        return (self.reason, self.detail, self.frame_type, self.payload)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PayloadRejected) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class CommandTimeout(ControllerError):
    """No RESULT with the command's id arrived in time. The command may still be carried out
    later: the link keeps retransmitting it until the controller acknowledges it."""

    def __init__(self, *, command: str, command_id: int | str, timeout: float) -> None:
        super().__init__(f"no result for command {command!r} (id {command_id!r}) within {timeout} s")
        self.command = command
        self.command_id = command_id
        self.timeout = timeout


class CommandNotQueued(ControllerError):
    """The link's outgoing queue was full of more important frames; the command was not sent."""

    def __init__(self, *, command: str, command_id: int | str) -> None:
        super().__init__(f"command {command!r} (id {command_id!r}) dropped: link queue full")
        self.command = command
        self.command_id = command_id


class LinkClosed(ControllerError):
    """The link was closed (or its pump failed) while a command waited for its result."""

    def __init__(self, *, command_id: int | str) -> None:
        super().__init__(f"the controller link closed before command {command_id!r} had its result")
        self.command_id = command_id


class TransportError(ControllerError):
    """The byte transport (serial port) failed: missing, unplugged, or the peer closed it."""

    def __init__(self, message: str, *, port: str) -> None:
        super().__init__(message)
        self.port = port
