"""Errors of edge.cameras, details as attributes. A rejected metadata push is returned as a
value (parse_push, counted by the ingest endpoint by `reason`); a bad camera config is raised
to the agent's config loader."""

from __future__ import annotations


class CameraError(Exception):
    """Base of every error about the pole's cameras or their metadata."""


class CameraConfigError(CameraError, ValueError):
    """One camera's settings are not usable. `field` and `value` name what is wrong; the
    message says what would be accepted."""

    def __init__(self, detail: str, *, field: str, value: object, camera_id: str | None = None) -> None:
        where = f"camera {camera_id!r}: " if camera_id else ""
        super().__init__(f"{where}{field} {value!r} is not allowed: {detail}")
        self.detail = detail
        self.field = field
        self.value = value
        self.camera_id = camera_id


class IngestRejected(CameraError):
    """A metadata push that is refused whole: nothing in it was stored.

    `status` is the HTTP status to answer (400, 401, 413, 415, 422); `reason` a stable short
    code for counters ("bad-json", "invalid", "unknown-camera", ...); `detail` says what was
    wrong and what would have been accepted, naming the JSON path (`records[3].fps`) when one
    field is at fault; `path` is that path, or None."""

    def __init__(self, status: int, reason: str, detail: str, *, path: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.path = path

    def _key(self) -> tuple[int, str, str, str | None]:
        return (self.status, self.reason, self.detail, self.path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IngestRejected) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"IngestRejected({self.status}, {self.reason!r}, {self.detail!r})"
