"""One camera on the pole as the agent's config describes it (built by the agent's TOML loader):
where it is on the local network and how `edge.cameras.probe` checks it is there."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from protocols.messages import CameraInfo
from protocols.topics import ID_PATTERN

from .errors import CameraConfigError

ProbeKind = Literal["rtsp", "tcp"]
PROBE_KINDS: tuple[str, ...] = get_args(ProbeKind)
RTSP_PORT = 554

_ID_RE = re.compile(ID_PATTERN)
_NAME_MAX = 128  # protocols.messages.Name: the camera's name and model go into the node's birth
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraConfig:
    """`probe`: "rtsp" sends OPTIONS and wants an RTSP answer; "tcp" only connects (for a
    camera whose RTSP server drops strangers, or a port that is not RTSP)."""

    camera_id: str
    name: str
    host: str
    port: int = RTSP_PORT
    probe: ProbeKind = "rtsp"
    model: str | None = None

    def __post_init__(self) -> None:
        camera_id = self.camera_id
        if not isinstance(camera_id, str) or not _ID_RE.match(camera_id):
            raise CameraConfigError(
                "use 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
                field="camera_id",
                value=camera_id,
            )
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= _NAME_MAX:
            raise CameraConfigError(
                f"use a text of 1 to {_NAME_MAX} characters",
                field="name",
                value=self.name,
                camera_id=camera_id,
            )
        if not _is_host(self.host):
            raise CameraConfigError(
                "use a host name (cam-1.local) or an IP address (192.0.2.10, fd00::10), without a port",
                field="host",
                value=self.host,
                camera_id=camera_id,
            )
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise CameraConfigError(
                f"use a TCP port from 1 to 65535 (RTSP is {RTSP_PORT})",
                field="port",
                value=self.port,
                camera_id=camera_id,
            )
        if self.probe not in PROBE_KINDS:
            raise CameraConfigError(
                f"use one of {', '.join(repr(k) for k in PROBE_KINDS)}",
                field="probe",
                value=self.probe,
                camera_id=camera_id,
            )
        if self.model is not None and (
            not isinstance(self.model, str) or not 1 <= len(self.model) <= _NAME_MAX
        ):
            raise CameraConfigError(
                f"leave it out or use a text of 1 to {_NAME_MAX} characters",
                field="model",
                value=self.model,
                camera_id=camera_id,
            )

    def info(self) -> CameraInfo:
        """What the node's birth says about this camera."""
        return CameraInfo(camera_id=self.camera_id, name=self.name, model=self.model)


def cameras_by_id(cameras: Iterable[CameraConfig]) -> dict[str, CameraConfig]:
    """The config's cameras keyed by id; two cameras with one id is a config error."""
    found: dict[str, CameraConfig] = {}
    for camera in cameras:
        if camera.camera_id in found:
            raise CameraConfigError(
                "each camera needs its own camera_id",
                field="camera_id",
                value=camera.camera_id,
                camera_id=camera.camera_id,
            )
        found[camera.camera_id] = camera
    return found


def _is_host(host: object) -> bool:
    if not isinstance(host, str) or not host or len(host) > 253:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST_RE.match(host))
    return True
